@dataclass(frozen=True)
class DataSettings:
    """{{ "MNIST" if cookiecutter.dataset == "mnist" else "CIFAR-10" }} through torchvision, downloaded into data_dir once
    (see dataset.py)."""

    random_crop: bool = option(True, "augment: shift by up to 4 pixels (train only)")
{% if cookiecutter.dataset == "cifar10" %}
    hflip: bool = option(True, "augment: mirror left-right half the time (train only)")
{% endif %}
