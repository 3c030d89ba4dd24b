@dataclass(frozen=True)
class Augment:
{% if cookiecutter.dataset == "image_folder" %}
    """The training split's augmentation, applied to a whole batch with a random draw of its own
    per sample (torchvision's transforms, given a batch, would share one draw across it): a shift
    by up to `shift` pixels (the image reflected into the gap), a left-right mirror half the time
    with `hflip`, a turn by up to `rotation` degrees (corners filled with black) and brightness,
    contrast and saturation varied by up to the share `jitter`, in that order."""

    shift: int = 0
    hflip: bool = False
    rotation: float = 0.0
    jitter: float = 0.0

    DRAWS = 7  # uniform numbers drawn per sample: 2 shift, 1 mirror, 1 turn, 3 jitter

    def __bool__(self) -> bool:
        return bool(self.shift or self.hflip or self.rotation or self.jitter)
{% elif cookiecutter.dataset == "cifar10" %}
    """The training split's augmentation, applied to a whole batch with a random draw of its own
    per sample (torchvision's transforms, given a batch, would share one draw across it): a shift
    by up to `shift` pixels (the image reflected into the gap), then a left-right mirror half the
    time with `hflip`."""

    shift: int = 0
    hflip: bool = False

    DRAWS = 3  # uniform numbers drawn per sample: 2 shift, 1 mirror

    def __bool__(self) -> bool:
        return bool(self.shift or self.hflip)
{% else %}
    """The training split's augmentation, applied to a whole batch with a random draw of its own
    per sample (torchvision's transforms, given a batch, would share one draw across it): a shift
    by up to `shift` pixels (the image reflected into the gap)."""

    shift: int = 0

    DRAWS = 2  # uniform numbers drawn per sample, for the shift

    def __bool__(self) -> bool:
        return bool(self.shift)
{% endif %}

    def __call__(self, images: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """uint8 `images` (B, C, H, W) augmented as their (B, DRAWS) `draws` in [0, 1) say, as
        floats in [0, 1]."""
        draws = draws.to(images.device)
{% if cookiecutter.dataset == "mnist" %}
        shifts = (draws * (2 * self.shift + 1)).long() - self.shift
        never = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        images = moved(images, shifts, mirror=never)  # a mirrored digit is another symbol
        return images.float().div(255)
{% else %}
        if self.shift or self.hflip:
            shifts = (draws[:, :2] * (2 * self.shift + 1)).long() - self.shift
            images = moved(images, shifts, (draws[:, 2] < 0.5) & self.hflip)
{% if cookiecutter.dataset == "image_folder" %}
        images = images.float().div(255)
        if self.rotation:
            images = turned(images, (draws[:, 3] * 2 - 1) * self.rotation)
        if self.jitter:
            factors = 1 + (draws[:, 4:] * 2 - 1) * self.jitter  # brightness, contrast, saturation
            images = jittered(images, factors.view(-1, 3, 1, 1, 1).unbind(1))
        return images
{% else %}
        return images.float().div(255)
{% endif %}
{% endif %}


def moved(images: torch.Tensor, shifts: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    """Each image shifted by its own (rows, columns) `shifts`, the image reflected into the gap
    (as padding with mode "reflect" and cropping would), then mirrored left-right where `mirror`
    is true: one gather of pixels for the whole batch."""
    batch, channels, height, width = images.shape
    rows = reflected(shifts[:, :1] + torch.arange(height, device=images.device), height)
    columns = reflected(shifts[:, 1:] + torch.arange(width, device=images.device), width)
    columns = torch.where(mirror[:, None], columns.flip(1), columns)
    pixels = (rows[:, :, None] * width + columns[:, None, :]).view(batch, 1, -1)
    return images.flatten(2).gather(2, pixels.expand(-1, channels, -1)).view_as(images)


def reflected(positions: torch.Tensor, size: int) -> torch.Tensor:
    """Positions outside 0 to size - 1 mirrored back inside, about the first and last pixel."""
    return (size - 1) - ((size - 1) - positions.abs()).abs()


{% if cookiecutter.dataset == "image_folder" %}
def turned(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Each image turned about its centre by its own angle, nearest pixel, corners black."""
    radians = torch.deg2rad(degrees)
    cos, sin, zero = radians.cos(), radians.sin(), torch.zeros_like(radians)
    matrices = torch.stack([cos, -sin, zero, sin, cos, zero], dim=1).view(-1, 2, 3)
    grid = F.affine_grid(matrices, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", align_corners=False)


def jittered(images: torch.Tensor, factors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Brightness, contrast and saturation scaled by (B, 1, 1, 1) `factors`, as torchvision's
    adjust_* functions do it."""
    brightness, contrast, saturation = factors
    images = (images * brightness).clamp(0, 1)
    grey = grey_of(images)
    images = blend(images, grey.mean(dim=(1, 2, 3), keepdim=True), contrast)
    if images.shape[1] == 3:  # grey images have no saturation
        images = blend(images, grey_of(images), saturation)
    return images


def grey_of(images: torch.Tensor) -> torch.Tensor:
    """The (B, 1, H, W) luminance of RGB (or grey) images, with torchvision's weights."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * images + (1 - factor) * other).clamp(0, 1)


{% endif %}
class ImageBatches(TensorBatches, Dataset):
    """uint8 images (N, C, H, W) with their labels: a batch is gathered by one indexing
    operation, augmented as a batch (`Augment`), scaled to [0, 1] and normalised with the
    training split's `mean` and `std`. No per-sample Python, no collation.

{% if cookiecutter.dataset == "image_folder" %}
    `images` is a tensor in memory, or anything that a tensor of indices gathers from (image
    files read on access). An item is an index or a tensor of them, or (epoch, index) pairs
{% else %}
    An item is an index or a tensor of them, or (epoch, index) pairs
{% endif %}
    from `EpochIndices`: then each sample's draw comes from (seed, epoch, index), so that any
    batch size, any number of workers and a resumed run augment a sample as an uninterrupted
    run does. A plain index into an augmented split draws anew each time.
    """

    def __init__(
        self,
        images: {{ "Any" if cookiecutter.dataset == "image_folder" else "torch.Tensor" }},
        labels: torch.Tensor,
        classes: tuple[str, ...],
        mean: list[float],
        std: list[float],
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        self.images = images
        self.labels = labels  # (N,) int64
        self.classes = classes
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.augment = augment or None
        self.seed = seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(item, torch.Tensor) or item.dim() == 0:  # one sample
            images, labels = self[torch.tensor([item])]
            return images[0], labels[0]
        epochs, indices = item.unbind(1) if item.dim() == 2 else (None, item)
        images = self.images[indices]
        if self.augment is None:
            images = images.float().div(255)
        else:
            images = self.augment(images, self.draws(epochs, indices))
        return (images - self.mean) / self.std, self.labels[indices]

    def draws(self, epochs: torch.Tensor | None, indices: torch.Tensor) -> torch.Tensor:
        """(B, Augment.DRAWS) uniform numbers: from (seed, epoch, index) per sample, or from the
        global generator without epochs."""
        if epochs is None:
            return torch.rand(len(indices), Augment.DRAWS)
        generator = torch.Generator()
        keys = zip(epochs.tolist(), indices.tolist(), strict=True)
        seeds = [mixed_seed(self.seed, epoch, index) for epoch, index in keys]
        draws = [torch.rand(Augment.DRAWS, generator=generator.manual_seed(s)) for s in seeds]
        return torch.stack(draws)

    def sample_keys(self) -> list[bytes]:
        """A fingerprint per sample, to find samples that are in two splits."""
{% if cookiecutter.dataset == "image_folder" %}
        if not isinstance(self.images, torch.Tensor):
            return self.images.sample_keys()
{% endif %}
        return image_keys(self.images)

    def class_counts(self) -> dict[str, int]:
        """How many samples of each class this split holds."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))


def image_keys(images: torch.Tensor) -> list[bytes]:
    """A fingerprint of each image's pixels."""
    return [hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest() for image in images]
