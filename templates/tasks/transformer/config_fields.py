@dataclass(frozen=True)
class TaskSettings:
    """The model: a Transformer encoder over the tokens (see model.py)."""

    # Settings that only --test uses: they may change when a run resumes.
    TEST_ONLY: ClassVar[frozenset[str]] = frozenset()

    d_model: int = option(64, "size of each token's vector through the encoder", ge=1)
    num_heads: int = option(4, "attention heads per layer; must divide d_model", ge=1)
    num_layers: int = option(2, "encoder layers", ge=1)
    ff_dim: int = option(128, "hidden size of each layer's feed-forward block", ge=1)
    dropout: float = option(0.1, "dropout inside the encoder layers", ge=0, lt=1, search="0:0.3")
{% include "shared/config_classifier_fields.py" %}
{% include "shared/config_ema.py" %}
