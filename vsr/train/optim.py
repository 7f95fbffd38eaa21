"""Optimiser, learning-rate schedule with warmup, and the EMA of the weights."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from vsr.train.recipe import OptimizerSpec, ScheduleSpec

__all__ = ["EMA", "LRFactor", "advance_schedule", "build_optimizer", "build_scheduler"]


def build_optimizer(params: Iterable[nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    if spec.name == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)


class LRFactor:
    """The learning rate's multiplier at a step: linear warmup, then cosine decay or steps.

    A plain object with only numbers in ``__dict__`` so `LambdaLR.state_dict` saves it (a lambda
    would be skipped) and a resumed run can be checked against it.
    """

    def __init__(self, spec: ScheduleSpec, *, total_steps: int, base_lr: float) -> None:
        self.name = spec.name
        self.warmup = spec.warmup_steps
        self.total = total_steps
        self.floor = min(spec.min_lr / base_lr, 1.0)
        self.milestones = list(spec.milestones)
        self.gamma = spec.gamma

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.name == "step":
            return self.gamma ** sum(step >= m for m in self.milestones)
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, spec: ScheduleSpec, *, total_steps: int, base_lr: float
) -> LambdaLR:
    return LambdaLR(optimizer, LRFactor(spec, total_steps=total_steps, base_lr=base_lr))


def advance_schedule(scheduler: LambdaLR) -> None:
    """``scheduler.step()``, also where its optimiser has not stepped yet (a GAN's warm-up).

    A generator waiting out the discriminator's warm-up still moves along its schedule, so its rate
    stays a function of the step alone; torch warns about a schedule stepped before its optimiser.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        scheduler.step()


class EMA:
    """An exponential moving average of a module's weights, the copy that is validated and shipped.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates: early weights are
    far from good, and a fixed 0.999 would keep the average near the random initialisation for
    thousands of steps, which makes early validation meaningless on short runs.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        for ema_p, p in zip(self.module.parameters(), module.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - d)
        for ema_b, b in zip(self.module.buffers(), module.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])
