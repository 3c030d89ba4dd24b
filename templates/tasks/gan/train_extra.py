

class GANTrainer(Trainer):
    """The Trainer of a GAN: for each batch, one discriminator step, then one generator step.

    The generator is what `optimizer`, `scheduler` and the inherited loop train (its loss is
    `loss_fn`, the non-saturating -log D(G(z))). Before each of its forward passes,
    `discriminator_step` updates the discriminator with its own Adam (`d_optimizer`, constant
    lr x `d_lr_factor`) on the real batch against fresh, detached fakes; the discriminator is
    then frozen (requires_grad off) while the generator's loss flows through it, so the
    generator's step never touches it, as the generator is frozen during the discriminator's.
    `accumulate_steps` applies to the generator only; the discriminator steps on every batch.
    Checkpoints hold both optimizers and loss scalers.

    Validation adds `fd`, the Frechet distance of `fd_samples` images generated from fixed
    noise to the validation images: it picks best.pt and drives early stopping. Every epoch
    TensorBoard gets a grid of 64 samples from one fixed noise, so the same latent points can
    be watched turning into shapes.
    """

    monitor = "fd"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        metrics: MetricsFactory,
        cfg: Config,
        device: torch.device,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Scheduler | None = None,
        stop: GracefulStop | None = None,
    ) -> None:
        super().__init__(model, loss_fn, metrics, cfg, device, optimizer, scheduler, stop)
        self.d_optimizer = torch.optim.Adam(
            model.discriminator.parameters(), lr=cfg.lr * cfg.d_lr_factor, betas=(0.5, 0.999)
        )
        self.d_scaler = torch.amp.GradScaler(device.type, enabled=self.scaler.is_enabled())
        self.d_loss_fn = DiscriminatorLoss()
        # What each step trains; the other network is frozen meanwhile (see `train_only`).
        self.d_params = list(model.discriminator.parameters())
        self.g_params = list(model.generator.parameters())
        self.parallel_discriminator = model.discriminator  # see `prepare_steps`

    def prepare_steps(self) -> None:
        """Under torchrun, each network's step averages its own gradients: the discriminator's
        through its own DistributedDataParallel, the generator's through the whole GAN's, made
        while the discriminator is frozen so that it covers the generator's weights alone."""
        self.train_only(self.d_params)
        # Called twice per backward pass (real, then fake): no buffer broadcast in between.
        self.parallel_discriminator = distributed.wrap(
            self.model.discriminator, self.device, forward_sync_buffers=False
        )
        self.train_only(self.g_params)
        super().prepare_steps()

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """In training, the discriminator's step first; then the generator's outputs and loss."""
        if self.model.training and torch.is_grad_enabled():
            self.discriminator_step(inputs)
        return super().forward(inputs, targets)

    def discriminator_step(self, real: torch.Tensor) -> None:
        """One update of the discriminator: real images towards "real", fakes towards "fake".

        The first one goes through the same checks as the generator's first step.
        """
        discriminator = self.parallel_discriminator
        self.train_only(self.d_params)
        checks = None if self.first_step is None else FirstStepChecks(self.model, self.d_loss_fn)
        with self.autocast():
            with torch.no_grad():
                fake = self.model.sample(len(real))
            logits = torch.stack([discriminator(real), discriminator(fake)], dim=1)
            loss = self.d_loss_fn(logits)
        if checks is not None:
            checks.after_forward(logits, loss)
        self.d_scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.d_scaler.unscale_(self.d_optimizer)
            nn.utils.clip_grad_norm_(self.d_params, self.cfg.grad_clip)
        if checks is not None:
            checks.before_optimizer_step()
            scale = self.d_scaler.get_scale()
        self.d_scaler.step(self.d_optimizer)
        self.d_scaler.update()
        if checks is not None:
            checks.after_optimizer_step(step_skipped=self.d_scaler.get_scale() < scale)
        self.d_optimizer.zero_grad(set_to_none=True)
        self.train_only(self.g_params)  # the generator's step must not train the discriminator

    def train_only(self, params: list[nn.Parameter]) -> None:
        """Let gradients reach only `params` (one network's): the other network is frozen, so its
        gradients are neither computed nor mistaken for this step's."""
        others = self.g_params if params is self.d_params else self.d_params
        for p in others:
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)

    def warn_if_loss_did_not_move(self) -> None:
        """Nothing to warn about: the generator's loss rises as the discriminator learns, so it
        cannot tell whether the game works. `fd`, measured at every validation, can."""
        self.early_losses = None

    @torch.inference_mode()
    def evaluate(self, loader: DataLoader, desc: str = "evaluate") -> dict[str, float]:
        """The generator's loss and the metrics over `loader`, and the sample quality `fd`."""
        results = super().evaluate(loader, desc)
        # Under torchrun, each process holds a share of the validation images: gather them all.
        real = distributed.concat_over_ranks(torch.cat([image_features(x) for x, _ in loader]))
        fake = image_features(self.fixed_samples(self.cfg.fd_samples))
        return {**results, "fd": frechet_distance(real, fake)}

    @torch.inference_mode()
    def measure(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Loss and metrics of one batch, and the Frechet distance of as many samples to it."""
        results = super().measure(inputs, targets)
        fake = image_features(self.fixed_samples(len(inputs)))
        return {**results, "fd": frechet_distance(image_features(inputs), fake)}

    def fixed_samples(self, count: int) -> torch.Tensor:
        """`count` images generated in eval mode from noise fixed by `seed`, on the CPU."""
        self.model.eval()
        noise = torch.Generator().manual_seed(self.cfg.seed)
        samples = [
            self.model.sample(min(self.cfg.batch_size, count - start), noise).float().cpu()
            for start in range(0, count, self.cfg.batch_size)
        ]
        return torch.cat(samples)

    @torch.inference_mode()
    def log_epoch_images(self) -> None:
        """A grid of 64 samples from the same fixed noise every epoch, and the discriminator's
        verdict on real images."""
        samples = self.fixed_samples(64)
        self.writer.add_images("samples/fixed_noise", (samples + 1) / 2, self.global_step)
        super().log_epoch_images()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "d_scaler": self.d_scaler.state_dict(),
        }

    def load_state_dict(self, checkpoint: dict[str, Any], path: Path) -> None:
        super().load_state_dict(checkpoint, path)
        try:
            self.d_optimizer.load_state_dict(checkpoint["d_optimizer"])
            self.d_scaler.load_state_dict(checkpoint["d_scaler"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"the discriminator's optimizer state in {path} does not fit this run ({error}). "
                "Resume a checkpoint of this GAN project."
            ) from None
