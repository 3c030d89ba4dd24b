@dataclass(frozen=True)
class TaskSettings:
    """The model and its loss (see model.py)."""

    # Settings that only --test uses: they may change when a run resumes.
    TEST_ONLY: ClassVar[frozenset[str]] = frozenset()

    model: str = option("linear", "linear (its weights are the fit) or mlp", choices=MODELS)
    hidden_dim: int = option(
        64, "width of the mlp's two hidden layers", ge=1, only=("model", "mlp")
    )
    loss: str = option("mse", "mse, l1 or huber (quadratic, then linear)", choices=LOSSES)
