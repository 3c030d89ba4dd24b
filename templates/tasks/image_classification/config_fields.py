@dataclass(frozen=True)
class TaskSettings:
    """The model: a backbone that turns images into features, and a linear head (see model.py)."""

    # Settings that only --test uses: they may change when a run resumes.
    TEST_ONLY: ClassVar[frozenset[str]] = frozenset(("tta",))

    backbone: str = option("cnn", "cnn (small, fast) or resnet18 (torchvision)", choices=BACKBONES)
    width: int = option(
        AUTO,
        "cnn: channels of the first conv block, doubled by each next; auto: 32, 64 over 32 classes",
        ge=1,
        auto=True,
        only=("backbone", "cnn"),
    )
    pretrained: bool = option(
        False,
        "resnet18: start from ImageNet weights (downloaded once)",
        only=("backbone", "resnet18"),
    )
    norm: str = option(
        "batch",
        "cnn: normalisation in the conv blocks: batch, group (independent of the batch size: for "
        "batches of a few images) or none",
        choices=NORMS,
        only=("backbone", "cnn"),
    )
    freeze_backbone: bool = option(False, "train the head only; the backbone stays as it is")
    backbone_lr_factor: float = option(1.0, "backbone lr = lr x this (0.1 for pretrained)", gt=0)
    dropout: float = option(0.2, "dropout before the head", ge=0, lt=1, search="0:0.5")
    tta: bool = option(False, "--test: also average each prediction with the mirror image's")
    mix: str = option(
        "none",
        "mix training images in pairs, and their labels alike: mixup (blends) or cutmix (a box "
        "of one pasted into the other)",
        choices=MIXES,
    )
    mix_alpha: float = option(
        1.0,
        "mixup, cutmix: each pair's shares are drawn from Beta(mix_alpha, mix_alpha)",
        gt=0,
        only=("mix", ("mixup", "cutmix")),
    )
{% include "shared/config_classifier_fields.py" %}
{% include "shared/config_ema.py" %}
