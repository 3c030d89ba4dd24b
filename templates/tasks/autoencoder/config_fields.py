@dataclass(frozen=True)
class TaskSettings:
    """The model and its two-stage pipeline (see README.md): pretrain without labels, then
    finetune with few."""

    # Settings that only --test uses: they may change when a run resumes.
    TEST_ONLY: ClassVar[frozenset[str]] = frozenset(("ttt_steps", "test_noise", "ttt_lr"))

    stage: str = option("all", "all, pretrain, finetune or scratch", choices=STAGES)
{% if cookiecutter.dataset == "image_folder" %}
    labeled_fraction: float = option(
        1.0, "share of the labelled training images whose labels the classifiers see", gt=0, le=1
    )
{% else %}
    labeled_fraction: float = option(
        0.05, "share of the training images whose labels the classifiers see", gt=0, lt=1
    )
{% endif %}
    encoder_from: str = option("", "finetune: a pretrain best.pt; empty: the newest pretrain run")
    finetune_epochs: int = option(40, "epochs of finetune and scratch (epochs: of pretrain)", ge=1)

    # Model: a conv encoder to a bottleneck vector, a mirrored decoder, a small classifier head
    width: int = option(16, "channels of the first conv block; later blocks double it", ge=1)
    bottleneck: int = option(32, "size of the code the encoder compresses an image into", ge=1)
    norm: str = option(
        "batch",
        "normalisation in the conv blocks: batch, group (small batches) or none",
        choices=NORMS,
    )
    loss: str = option("mse", "pretrain reconstruction loss: mse or l1", choices=LOSSES)
    hidden_dim: int = option(64, "width of the classifier head's hidden layer", ge=1)
    ttt_steps: int = option(0, "--test: encoder steps on each test batch before classifying", ge=0)
    test_noise: float = option(0.0, "extra noise on the test images only: a shift for ttt", ge=0)
    ttt_lr: float = option(1e-2, "learning rate of the test-time training steps (sgd)", gt=0)
