"""DDP for every family: Lightning's DDP strategy, minus the wrapper for modules that have nothing to train."""

from __future__ import annotations

from pytorch_lightning.strategies import DDPStrategy


class RecDDPStrategy(DDPStrategy):
    """Lightning's DDP (`trainer=ddp`), except that a module without trainable parameters stays unwrapped.

    torch refuses to wrap such a module in DistributedDataParallel (there are no gradients to all-reduce). Fit-once
    models (pop, kNN, MF through implicit) fit the same on every rank; under DDP they only need the distributed
    sampler and RecEvalCallback's all-gather, so every family runs with the same `trainer=ddp`."""

    def configure_ddp(self) -> None:
        if any(p.requires_grad for p in self.model.parameters()):
            super().configure_ddp()
