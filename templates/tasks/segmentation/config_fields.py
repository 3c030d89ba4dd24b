@dataclass(frozen=True)
class TaskSettings:
    """The model and its stages. Coarse to fine (seed 000, strategy 1): find the region at low
    resolution, then segment the crop."""

    # Settings that only --test uses: they may change when a run resumes.
    TEST_ONLY: ClassVar[frozenset[str]] = frozenset(("coarse_from",))

    stage: str = option("full", "full, coarse_to_fine, or its stages coarse, fine", choices=STAGES)
    coarse_factor: int = option(4, "the coarse model sees images shrunk by this factor", ge=2)
    crop_size: int = option(32, "side of the fine model's crops; a multiple of 8", ge=8)
    coarse_from: str = option("", "fine: the coarse best.pt that --test finds regions with")

    # Model: a U-Net (see model.py) and its compound loss
    width: int = option(8, "channels of the first U-Net level; each level down doubles it", ge=1)
    norm: str = option(
        "batch",
        "normalisation in the conv blocks: batch, group (small batches) or none",
        choices=NORMS,
    )
    loss: str = option("dice_ce", "dice_ce (Dice + cross-entropy) or dice_focal", choices=LOSSES)
    dice_weight: float = option(1.0, "weight of the Dice term of the loss", ge=0)
    pixel_weight: float = option(1.0, "weight of the per-pixel term (cross-entropy or focal)", ge=0)
    focal_gamma: float = option(
        2.0,
        "dice_focal: how strongly easy pixels are discounted",
        ge=0,
        only=("loss", "dice_focal"),
    )
{% include "shared/config_ema.py" %}
