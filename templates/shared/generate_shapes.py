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

    grid = torch.arange(image_size, dtype=torch.float32)
    dx = (grid.view(1, 1, -1) - cx).abs()  # (N, 1, S) -> broadcast to (N, S, S)
    dy = (grid.view(1, -1, 1) - cy).abs()
    distance = (dx**2 + dy**2).sqrt()
    bar = radius / 3
    masks = torch.stack(
        [
            distance <= radius,  # circle
            torch.maximum(dx, dy) <= 0.85 * radius,  # square of similar area
            (dy <= radius) & (dx <= ((grid.view(1, -1, 1) - cy) + radius) / 2),  # triangle
            ((dx <= bar) & (dy <= radius)) | ((dy <= bar) & (dx <= radius)),  # cross
            (distance <= radius) & (distance >= radius / 2),  # ring
        ]
    )  # (classes, N, S, S)
    shape = masks[labels, torch.arange(num_samples)].float()
    pixels = shape * brightness + noise * torch.randn(shape.shape, generator=generator)
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)
    return {"images": images, "labels": labels}
