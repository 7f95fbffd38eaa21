"""The discriminator's share of a GAN training step, and the generator's GAN loss.

`Trainer` owns the generator; a `GanStage` owns the discriminator, its optimiser, schedule and
gradient scaler, and turns one generator output into (1) a discriminator update and (2) the
generator's weighted loss. Per step the order is: the generator's forward, a discriminator update
on that output (detached) and the real patches, then the generator's loss against the updated
discriminator and its update. The discriminator's forwards run under the generator's autocast;
its logits and every loss are float32.

Checkpoints keep format 1: a GAN run adds the keys ``discriminator``, ``d_optimizer``,
``d_scheduler`` and ``d_scaler``; a PSNR run's checkpoint has none of them and is read as before.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vsr.errors import ConfigError
from vsr.models import ModelDescriptor, load_model
from vsr.models.compact import widen_compact_scale
from vsr.train.gan import UNetDiscriminatorSN, make_adversarial_loss
from vsr.train.losses import gradient_loss, phase_loss, ssim_loss
from vsr.train.optim import build_optimizer, build_scheduler
from vsr.train.precision import autocast
from vsr.train.recipe import GanSpec, OptimizerSpec, Recipe

__all__ = ["GAN_STATE_KEYS", "GanStage", "load_generator_weights"]

log = logging.getLogger(__name__)

GAN_STATE_KEYS = ("discriminator", "d_optimizer", "d_scheduler", "d_scaler")
# The discriminator draws its initial weights from a generator of its own, seeded from the
# recipe's seed, so they depend neither on the generator's architecture nor on init_from.
_D_SEED = 0xD15C


def load_generator_weights(
    module: nn.Module, path: str, descriptor: ModelDescriptor, *, key: str = "gan.init_from"
) -> None:
    """Copy exported weights into ``module``: the PSNR generator a GAN run starts from, or any
    recipe's ``init_from`` (``key`` names the recipe key in the messages)."""
    if not Path(path).is_file():
        hint = (
            "train and export the PSNR stage first (its sibling recipe)"
            if key.startswith("gan")
            else ("export the run it continues first")
        )
        raise ConfigError(f"{key} {path} not found; {hint}")
    loaded = load_model(path)
    d = loaded.descriptor
    seen = (d.architecture, d.scale, dict(d.hyperparameters))
    want = (descriptor.architecture, descriptor.scale, dict(descriptor.hyperparameters))
    if _widens_scale(seen, want):
        # A compact model of a smaller scale: its low-resolution layers are this model's own.
        state = widen_compact_scale(loaded.module.state_dict(), from_scale=d.scale, to_scale=descriptor.scale)
        log.info(
            "%s: x%d weights widened to x%d (last conv's sub-pixels copied)", key, d.scale, descriptor.scale
        )
        module.load_state_dict(state)
        return
    if seen != want:
        raise ConfigError(
            f"{key} {Path(path).name} is {d.architecture} x{d.scale} {dict(d.hyperparameters)}, "
            f"the recipe trains {want[0]} x{want[1]} {want[2]}; use weights of the recipe's own model"
        )
    module.load_state_dict(loaded.module.state_dict())


def _widens_scale(seen: tuple[str, int, dict], want: tuple[str, int, dict]) -> bool:
    """Same compact network, and a start of a scale that divides the recipe's (x2 for x4)."""
    return (
        seen[0] == want[0] == "compact"
        and seen[2] == want[2]
        and want[1] > seen[1]
        and want[1] % seen[1] == 0
    )


class GanStage:
    """The discriminator of a GAN run with its optimiser state, and the generator's GAN loss."""

    def __init__(
        self, recipe: Recipe, *, total_steps: int, device: torch.device, amp_dtype: torch.dtype | None
    ) -> None:
        if recipe.gan is None:
            raise ValueError(f"recipe {recipe.name} has no [gan] table")
        self.spec: GanSpec = recipe.gan
        self.scale = recipe.scale
        self.device = device
        self._amp_dtype = amp_dtype
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed ^ _D_SEED)
            net = UNetDiscriminatorSN(3, self.spec.d_num_feat)
        self.discriminator = net.to(device, memory_format=torch.channels_last).train()
        d_opt = OptimizerSpec(name=recipe.optimizer.name, lr=self.spec.d_lr, betas=self.spec.d_betas)
        self.optimizer = build_optimizer(self.discriminator.parameters(), d_opt)
        self.scheduler = build_scheduler(
            self.optimizer, recipe.schedule, total_steps=total_steps, base_lr=self.spec.d_lr
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self.adversarial = make_adversarial_loss(self.spec.loss)
        self._sums: dict[str, Tensor] = {}
        self._count = 0

    def trains_generator(self, step: int) -> bool:
        """False during the discriminator's warm-up (``gan.d_warmup_steps``)."""
        return step >= self.spec.d_warmup_steps

    def _score(self, images: Tensor) -> Tensor:
        with autocast(self.device, self._amp_dtype):
            logits = self.discriminator(images.contiguous(memory_format=torch.channels_last))
        return logits.float()

    def discriminator_step(self, real: Tensor, fake: Tensor) -> Tensor:
        """One discriminator update on real patches and (detached) generator outputs; its loss."""
        d = self.discriminator.train().requires_grad_(True)
        n = real.shape[0]
        # One forward over both halves: one spectral-norm power iteration, one set of weights.
        logits = self._score(torch.cat([real.float(), fake.detach().float()]))
        real_logits, fake_logits = logits[:n], logits[n:]
        loss = self.adversarial.discriminator(real_logits, fake_logits)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        d.requires_grad_(False)
        self._add("d_loss", loss)
        self._add("d_real", real_logits.mean())
        self._add("d_fake", fake_logits.mean())
        self._count += 1
        return loss.detach()

    def generator_loss(self, out: Tensor, hr: Tensor, pixel: Tensor) -> Tensor:
        """The generator's weighted loss, given its pixel loss; gradients reach the generator only."""
        s = self.spec
        # eval: no power iteration, the step's discriminator is the one just updated
        self.discriminator.eval().requires_grad_(False)
        if self.adversarial.generator_needs_real:
            n = hr.shape[0]
            logits = self._score(torch.cat([hr.float(), out.float()]))
            adv = self.adversarial.generator(logits[:n].detach(), logits[n:])
        else:
            adv = self.adversarial.generator(out.new_empty(0), self._score(out))
        total = s.pixel_weight * pixel + s.adversarial_weight * adv
        self._add("g_pixel", pixel)
        self._add("g_adv", adv)
        if s.gradient_weight > 0:
            grad = gradient_loss(out, hr)
            total = total + s.gradient_weight * grad
            self._add("g_gradient", grad)
        if s.ssim_weight > 0:
            structural = ssim_loss(out, hr)
            total = total + s.ssim_weight * structural
            self._add("g_ssim", structural)
        if s.phase_weight > 0:
            grid = phase_loss(out, hr, self.scale, s.phase_block)
            total = total + s.phase_weight * grid
            self._add("g_phase", grid)
        self.discriminator.train()
        return total

    def _add(self, key: str, value: Tensor) -> None:
        # summed on the device: reading a value every step would synchronise it with the host
        v = value.detach().float()
        self._sums[key] = self._sums[key] + v if key in self._sums else v

    def log_means(self) -> dict[str, float]:
        """The means of the losses and mean logits since the last call (for the log record)."""
        if self._count == 0:
            return {}
        means = {k: round(float(v) / self._count, 6) for k, v in sorted(self._sums.items())}
        self._sums.clear()
        self._count = 0
        if not math.isfinite(means["d_loss"]):
            raise ConfigError(
                f"the discriminator loss became {means['d_loss']}; the last checkpoint was kept. "
                "Lower gan.d_lr and start a new run"
            )
        return means

    def state_dict(self) -> dict[str, Any]:
        return {
            "discriminator": self.discriminator.state_dict(),
            "d_optimizer": self.optimizer.state_dict(),
            "d_scheduler": self.scheduler.state_dict(),
            "d_scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], *, total_steps: int) -> None:
        missing = [k for k in GAN_STATE_KEYS if k not in state]
        if missing:
            raise ConfigError(
                f"the checkpoint has no {', '.join(missing)}: it is not a GAN run's; use another --run-dir"
            )
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["d_optimizer"])
        self.scheduler.load_state_dict(state["d_scheduler"])
        self.scheduler.lr_lambdas[0].total = total_steps  # type: ignore[attr-defined]
        if state["d_scaler"]:
            self.scaler.load_state_dict(state["d_scaler"])
