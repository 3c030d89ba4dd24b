Batch = tuple[torch.Tensor, ...]  # what the DataLoader yields: (inputs, targets)


@dataclass
class Step:
    """What a training or validation step hands to the Trainer."""

    loss: torch.Tensor  # one number; in training, the Trainer backpropagates it
    outputs: torch.Tensor  # what the metrics score against the targets
    # One entry per sample (the batch has len(targets) samples), in the form the metrics take:
    # class indices (B,), or for mixed samples (MixUp, CutMix) class probabilities (B, classes),
    # which the shipped classification metrics score by the largest class.
    targets: torch.Tensor
    # Other named values (the parts of a compound loss, a statistic): averaged over each epoch
    # and logged like the loss, as train_<name> and val_<name>
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Metrics(Protocol):
    """The task's scores over many batches, from sums that add up across processes."""

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch."""

    def compute(self) -> dict[str, float]:
        """The scores of everything added so far."""

    def state_dict(self) -> dict[str, Any]:
        """The sums so far, as plain data (mid-epoch checkpoints hold them)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what `state_dict` returned."""


class Task(nn.Module, ABC):
    """What the Trainer (train.py) needs from a task: its model, its steps and its metrics. (The
    validation score that picks best.pt is a setting: `monitor` in config.py.)

    For each batch the Trainer moves the batch to the device, calls `training_step` (under
    autocast), backpropagates the loss, clips the gradients and steps the optimizer over
    `parameter_groups`. A task is a module: it moves to the device with everything it holds, and
    each network or buffer it holds besides `model` goes into checkpoints too; other state (a
    second optimizer, say) goes in through nn.Module's `get_extra_state`/`set_extra_state`.
    """

    loss_falls = True  # a learning model's training loss falls: the run warns when it does not
    model: nn.Module

    def forward(self, batch: Batch) -> Step:
        # Under torchrun, DistributedDataParallel runs the training step through here, so that
        # the gradients of everything the step computes are averaged across processes.
        return self.training_step(batch)

    def parameter_groups(self, cfg: Config) -> list[dict[str, Any]]:
        """What the Trainer's optimizer trains, in groups with options of their own (an lr; a
        `weight_decay`, else cfg.weight_decay on weights and none on biases and norms)."""
        return [{"params": list(self.model.parameters()), "lr": cfg.lr}]

    def after_optimizer_step(self) -> None:
        """Called after every optimizer step (one per `accumulate_steps` batches): the place
        for what follows the weights, such as an average of them (see `evaluated`)."""

    def evaluated(self) -> nn.Module:
        """The network that is evaluated: validation_step calls it, and --test, --predict, the
        prediction pictures, the notebook and best.pt's choice use it. The model itself, or an
        average of its weights that the task keeps (an EMA, updated in after_optimizer_step)."""
        return self.model

    def exported(self, batch: Batch) -> tuple[nn.Module, torch.Tensor]:
        """What --export writes for inference: the evaluated network, and its input for
        `batch` (the inputs the DataLoader gives; a GAN's generator takes noise instead)."""
        return self.evaluated(), batch[0]

    @abstractmethod
    def training_step(self, batch: Batch) -> Step:
        """The loss of one training batch: the place to change what a step does."""

    @abstractmethod
    def validation_step(self, batch: Batch) -> Step:
        """The loss of one validation batch, in eval mode and without autograd."""

    @abstractmethod
    def metrics(self) -> Metrics:
        """A fresh, empty accumulator of the task's metrics."""

    @abstractmethod
    def overfitted(
        self, batch: Batch, start: dict[str, float], end: dict[str, float]
    ) -> tuple[bool, str]:
        """Whether the scores `end` on `batch` (`start`: before training) show that the model
        has memorised it (--overfit-batch), and that goal in words."""
