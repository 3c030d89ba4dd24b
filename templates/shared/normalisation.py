def normalisation(norm: str, channels: int) -> nn.Module:
    """Batch norm; group norm (Wu & He, 2018: the channels in 8 groups, each normalised within
    one image, so that it works alike for any batch size, even one image); or none."""
    if norm == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()
