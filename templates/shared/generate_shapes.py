def generate_shapes(
    num_samples: int, image_size: int, noise: float, seed: int
) -> dict[str, torch.Tensor]:
    """Draw `num_samples` noisy shape images (uint8, (N, 1, S, S)) and their class indices."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(num_samples, 1, 1, generator=generator)

    # Classes take turns, so every contiguous split is balanced to within one sample per class.
    labels = torch.arange(num_samples) % len(CLASSES)
    radius = uniform(0.15, 0.4) * image_size
    # Centres keep the whole shape inside the image.
    cx = radius + uniform(0, 1) * (image_size - 1 - 2 * radius)
    cy = radius + uniform(0, 1) * (image_size - 1 - 2 * radius)
    brightness = uniform(0.5, 1.0)

    shape = shape_masks(labels, radius, cx, cy, image_size).float()
    pixels = shape * brightness + noise * torch.randn(shape.shape, generator=generator)
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)
    return {"images": images, "labels": labels}


{% include "shared/shape_masks.py" %}
