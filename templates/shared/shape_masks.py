def shape_masks(
    kinds: torch.Tensor, radius: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, image_size: int
) -> torch.Tensor:
    """Boolean masks (N, S, S) of one shape per image: `kinds` (N,) picks circle, square,
    triangle, cross or ring; `radius`, `cx` and `cy` (N, 1, 1) give its size and centre."""
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
    )  # (kinds, N, S, S)
    return masks[kinds, torch.arange(len(kinds))]
