@dataclass(frozen=True)
class TaskSettings:
    """The model: a DCGAN generator and discriminator (see model.py), each its own optimizer."""

    # Settings that only --test uses: they may change when a run resumes.
    TEST_ONLY: ClassVar[frozenset[str]] = frozenset()

    latent_dim: int = option(64, "size of the noise vector the generator turns into an image", ge=1)
    width: int = option(32, "channels of G's last layer and D's first; the others double it", ge=1)
    d_lr_factor: float = option(1.0, "discriminator lr = lr x this (its own Adam, constant)", gt=0)
    fd_samples: int = option(1000, "most generated images the Frechet distance compares", ge=2)
