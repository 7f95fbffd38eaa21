"""The training loop: mixed precision, EMA, periodic validation, JSON-lines log, resumable runs.

A run lives in a folder: ``last.pt`` (the checkpoint, see `vsr.train.checkpoint`), ``log.jsonl``
(one record per log interval: step, loss, lr, seconds, steps/s and, when validated, the EMA
weights' Y-PSNR; a denoiser's RGB PSNR at sigma 25, ``val_psnr_rgb``) and ``recipe.json``. A run
resumed from ``last.pt`` continues exactly as if it had never stopped: batches depend only on
(seed, step), and every other state is in the checkpoint.
A recipe with ``[gan]`` also trains a discriminator (`vsr.train.gan_step.GanStage`) each step,
before the generator; its state joins the checkpoint, never the exported weights.

Stopping: the recipe's last step; ``max_minutes`` (the loop stops early enough to save a checkpoint
inside the budget); ``request_stop()`` (the CLI calls it on SIGINT/SIGTERM); or ``stop_at``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vsr import __version__
from vsr.backends.device import resolve_device
from vsr.errors import ConfigError
from vsr.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    check_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from vsr.train.data import PatchDataset, load_image_bank
from vsr.train.degradations import make_degradation
from vsr.train.denoise import DenoiseValidationSet, NoisyPatchDataset, make_noise
from vsr.train.export import export_weights
from vsr.train.gan_step import GanStage, load_generator_weights
from vsr.train.losses import make_loss
from vsr.train.models import build_model
from vsr.train.optim import EMA, advance_schedule, build_optimizer, build_scheduler
from vsr.train.precision import AMP_DTYPES, autocast, resolve_training_precision
from vsr.train.recipe import Recipe
from vsr.train.validate import ValidationSet

__all__ = ["LOG_NAME", "StopReason", "TrainResult", "Trainer", "resolve_training_precision"]

log = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
StopReason = Literal["done", "time", "interrupted", "stop_at"]
Record = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    step: int
    total_steps: int
    reason: StopReason
    seconds: float  # training wall time over every session of the run
    val_psnr_y: float | None  # the last validation's, if any
    checkpoint: Path


class Trainer:
    """One training run of a recipe in ``run_dir``; `run` trains, `export` writes the EMA weights."""

    def __init__(
        self,
        recipe: Recipe,
        run_dir: str | os.PathLike[str],
        *,
        resume: bool = False,
        steps: int | None = None,
        device: str = "auto",
        images: Sequence[NDArray[np.uint8]] | None = None,
        on_record: Callable[[Record], None] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        checkpoint = load_checkpoint(self.run_dir)
        if checkpoint is not None and not resume:
            raise ConfigError(
                f"{self.run_dir} already holds a run at step {checkpoint['step']}; "
                "pass --resume to continue it or choose another --run-dir"
            )
        if checkpoint is not None:
            check_resumable(checkpoint["recipe"], recipe, self.run_dir)
        # A resumed run keeps its own length (its schedule depends on it) unless told otherwise.
        saved_total = int(checkpoint["total_steps"]) if checkpoint is not None else None
        self.total_steps = steps or saved_total or recipe.steps
        if self.total_steps <= recipe.schedule.warmup_steps:
            raise ConfigError(
                f"--steps {self.total_steps} must exceed the warmup of {recipe.schedule.warmup_steps}"
            )
        if saved_total is not None and self.total_steps != saved_total:
            log.warning(
                "run length changed from %d to %d steps: the lr schedule changes from here",
                saved_total,
                self.total_steps,
            )
        self.recipe = recipe.replace(steps=self.total_steps)
        self.on_record = on_record
        self.device = resolve_device(device)
        self.precision = resolve_training_precision(recipe.precision, self.device)
        self._amp_dtype = AMP_DTYPES.get(self.precision)

        built = build_model(recipe)
        self.descriptor = built.descriptor
        # channels_last: oneDNN's and cuDNN's fast convolution layouts, for bf16 above all.
        self.model = (
            built.module.to(self.device, memory_format=torch.channels_last).train().requires_grad_(True)
        )
        if recipe.gan is not None and recipe.gan.init_from and checkpoint is None:
            load_generator_weights(self.model, recipe.gan.init_from, self.descriptor)
        if recipe.init_from and checkpoint is None:
            load_generator_weights(self.model, recipe.init_from, self.descriptor, key="init_from")
        self.ema = EMA(self.model, recipe.ema_decay)
        self.optimizer = build_optimizer(self.model.parameters(), recipe.optimizer)
        self.scheduler = build_scheduler(
            self.optimizer, recipe.schedule, total_steps=self.total_steps, base_lr=recipe.optimizer.lr
        )
        # Only fp16 needs loss scaling; disabled, the scaler passes everything through unchanged.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.loss_fn = make_loss(recipe.loss)
        self.gan = (
            GanStage(recipe, total_steps=self.total_steps, device=self.device, amp_dtype=self._amp_dtype)
            if recipe.gan is not None
            else None
        )
        self.step = 0
        self.last_lr = recipe.optimizer.lr
        self._seconds_before = 0.0
        self._val_psnr: float | None = None
        self._val_gradient_ratio: float | None = None
        if checkpoint is not None:
            self._restore(checkpoint)
        self._truncate_log()

        if images is None:
            images = load_image_bank(
                recipe.data.train,
                lossy_downscale=recipe.data.lossy_downscale,
                max_side=recipe.data.max_side,
                min_side=recipe.data.patch_size,
            )
        self.data: PatchDataset | NoisyPatchDataset
        self.validation: ValidationSet | DenoiseValidationSet
        if recipe.task == "denoise":
            # batches are (noisy, clean, sigma): train_step passes sigma to the model
            self.data = NoisyPatchDataset(
                images,
                patch_size=recipe.data.patch_size,
                batch_size=recipe.data.batch,
                noise=make_noise(recipe.data.degradation),
                seed=recipe.seed,
            )
            self.validation = DenoiseValidationSet(recipe.data.val)
        else:
            self.data = PatchDataset(
                images,
                patch_size=recipe.data.patch_size,
                batch_size=recipe.data.batch,
                degradation=make_degradation(recipe.data.degradation, recipe.scale),
                seed=recipe.seed,
            )
            self.validation = ValidationSet(recipe.data.val, recipe.scale)
        self._stop = threading.Event()
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0

    # -- state ---------------------------------------------------------------------------------

    def _state(self, seconds: float) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "total_steps": self.total_steps,
            "seconds": seconds,
            "val_psnr_y": self._val_psnr,
            "recipe": self.recipe.to_dict(),
            "precision": self.precision,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "vsr_version": __version__,
            **(self.gan.state_dict() if self.gan is not None else {}),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The schedule's length is this session's; the saved factor object only holds numbers.
        self.scheduler.lr_lambdas[0].total = self.total_steps  # type: ignore[attr-defined]
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.gan is not None:
            self.gan.load_state_dict(state, total_steps=self.total_steps)
        set_rng_state(state["rng"])
        self.step = int(state["step"])
        self._seconds_before = float(state["seconds"])
        self._val_psnr = state.get("val_psnr_y")
        log.info("resumed %s at step %d of %d", self.run_dir, self.step, self.total_steps)

    def _truncate_log(self) -> None:
        # Records written after the checkpoint belong to a timeline the resumed run replaces.
        path = self.run_dir / LOG_NAME
        if not path.is_file():
            return
        kept = [
            line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= self.step
        ]
        tmp = path.with_name(f"{LOG_NAME}.partial")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)

    def save(self, seconds: float | None = None) -> Path:
        total = self._seconds_before if seconds is None else seconds
        return save_checkpoint(self.run_dir, self._state(total))

    # -- training ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current step, save a checkpoint and return from `run` (signal-safe)."""
        self._stop.set()

    def train_step(self, lr: Tensor, hr: Tensor, sigma: Tensor | None = None) -> Tensor:
        """One optimiser step on a batch (a GAN run: the discriminator's, then the generator's);
        returns the generator's (detached) loss. A denoiser's batch has its noise levels, ``sigma``."""
        self.model.train()
        lr = lr.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        hr = hr.to(self.device, non_blocking=True)
        # during the discriminator's warm-up the generator only makes its fakes
        trains = self.gan is None or self.gan.trains_generator(self.step)
        with autocast(self.device, self._amp_dtype), torch.set_grad_enabled(trains):
            out = self.model(lr) if sigma is None else self.model(lr, sigma.to(self.device))
        if self.gan is not None:
            self.gan.discriminator_step(hr, out)
        with torch.set_grad_enabled(trains):
            loss = self.loss_fn(out, hr)
            if self.gan is not None:
                loss = self.gan.generator_loss(out, hr, loss)
        # the rate this step uses: the scheduler moves on to the next step's below
        self.last_lr = float(self.optimizer.param_groups[0]["lr"])
        if trains:
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.recipe.optimizer.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.optimizer.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        advance_schedule(self.scheduler)  # in the discriminator's warm-up too
        if trains:
            self.ema.update(self.model)
        self.step += 1
        return loss.detach()

    def validate(self) -> float:
        """The EMA weights' mean Y-PSNR on the val folder (their gradient ratio is kept too); a
        denoiser's mean RGB PSNR at sigma 25."""
        if isinstance(self.validation, DenoiseValidationSet):
            self._val_psnr = self.validation.psnr_rgb(
                self.ema.module, self.descriptor, device=str(self.device)
            )
            return self._val_psnr
        scores = self.validation.scores(self.ema.module, self.descriptor, device=str(self.device))
        self._val_psnr, self._val_gradient_ratio = scores.psnr_y, scores.gradient_ratio
        return self._val_psnr

    def _mean_loss(self) -> float | None:
        if self._loss_count == 0:
            return None
        mean = float(self._loss_sum) / self._loss_count
        if not math.isfinite(mean):
            raise ConfigError(
                f"the loss became {mean} before step {self.step}; the last checkpoint was kept. "
                "Lower optimizer.lr or set optimizer.grad_clip and start a new run"
            )
        return mean

    def _write(self, record: Record) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / LOG_NAME).open("a") as f:
            f.write(json.dumps(record) + "\n")
        log.info("%s", record)
        if self.on_record is not None:
            self.on_record(record)

    def run(
        self, *, max_minutes: float | None = None, since: float | None = None, stop_at: int | None = None
    ) -> TrainResult:
        """Train until the last step, the time budget, a stop request, or step ``stop_at``.

        The ``max_minutes`` budget counts from ``since`` (a `time.monotonic` value; default: now),
        so a caller can include its own setup (loading images) in it.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "recipe.json").write_text(json.dumps(self.recipe.to_dict(), indent=2) + "\n")
        r = self.recipe
        start = time.monotonic()
        deadline = (since or start) + max_minutes * 60.0 if max_minutes is not None else None
        # Estimates of what must still fit before the deadline, refined as they are measured.
        step_s, save_s, val_s = 1.0, 2.0, 10.0
        log_start, log_step = start, self.step
        first_step, saved_step = self.step, -1
        reason: StopReason = "done"
        while self.step < self.total_steps:
            if self._stop.is_set():
                reason = "interrupted"
                break
            if stop_at is not None and self.step >= stop_at:
                reason = "stop_at"
                break
            next_step = self.step + 1
            validates = next_step % r.val_every == 0 or next_step == self.total_steps
            need = 2 * step_s + save_s + (val_s if validates else 0.0)
            if deadline is not None and time.monotonic() + need > deadline:
                reason = "time"
                break
            t0 = time.monotonic()
            self._loss_sum += self.train_step(*self.data.batch(self.step))
            self._loss_count += 1
            now = time.monotonic()
            # the session's first step includes one-off setup (oneDNN primitive creation)
            step_s = 0.9 * step_s + 0.1 * (now - t0) if self.step > first_step + 1 else now - t0
            last = self.step == self.total_steps
            validate = self.step % r.val_every == 0 or last
            if self.step % r.log_every == 0 or validate:
                record: Record = {
                    "step": self.step,
                    "loss": self._mean_loss(),
                    "lr": self.last_lr,
                }
                self._loss_sum.zero_()
                self._loss_count = 0
                if self.gan is not None:
                    record.update(self.gan.log_means())
                record["steps_per_s"] = round((self.step - log_step) / max(now - log_start, 1e-9), 3)
                if validate:
                    t_val = time.monotonic()
                    denoiser = self.recipe.task == "denoise"
                    record["val_psnr_rgb" if denoiser else "val_psnr_y"] = round(self.validate(), 4)
                    if not denoiser:
                        record["val_gradient_ratio"] = round(self._val_gradient_ratio or 0.0, 4)
                    val_s = time.monotonic() - t_val
                record["seconds"] = round(self._seconds_before + time.monotonic() - start, 1)
                self._write(record)
                log_start, log_step = time.monotonic(), self.step
            if self.step % r.checkpoint_every == 0 or last:
                self._mean_loss()  # never checkpoint weights a diverged loss has produced
                t_save = time.monotonic()
                self.save(self._seconds_before + t_save - start)
                save_s = time.monotonic() - t_save
                saved_step = self.step
        seconds = self._seconds_before + time.monotonic() - start
        path = self.run_dir / CHECKPOINT_NAME
        if saved_step != self.step:
            self._mean_loss()
            path = self.save(seconds)
        self._seconds_before = seconds
        log.info("stopped (%s) at step %d of %d", reason, self.step, self.total_steps)
        return TrainResult(
            step=self.step,
            total_steps=self.total_steps,
            reason=reason,
            seconds=seconds,
            val_psnr_y=self._val_psnr,
            checkpoint=path,
        )

    def export(self, path: str | os.PathLike[str]) -> dict[str, str]:
        """Write the EMA weights, scored on the recipe's report folders, to a ``.safetensors`` file."""
        return export_weights(
            self.ema.module,
            path,
            recipe=self.recipe,
            steps=self.step,
            eval_folders=self.recipe.data.report,
            device=str(self.device),
            extra={"precision_trained": self.precision},
        )
