"""Narrow an FFDNet denoiser by dropping its least used channels: the start of a cheaper model.

    python tools/prune_denoiser.py denoise runs/denoise-lite-init.safetensors --width 64

`vsr.train.prune.narrow_ffdnet` keeps each layer's ``--width`` most used channels, measured on 64
noisy training patches as the recipes cut them (sigma uniform in [0, 75]), and folds the rest into
the next bias; a fine-tuning recipe (``init_from``) trains the result back. Prints Set5 sigma-25
RGB PSNR before and after, with the code and noise of ``vsr eval --noise 25``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from vsr.errors import VsrError
from vsr.models import load_model
from vsr.quality import evaluate_denoising
from vsr.train.data import PatchSampler, load_image_bank
from vsr.train.prune import mean_activations, narrow_ffdnet

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


def noisy_patches(folder: Path, *, count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` training patches as the recipes cut them, with Gaussian noise, sigma uniform in [0, 75]/255."""
    bank = load_image_bank([folder], lossy_downscale=2, min_side=size)
    clean = PatchSampler(bank, patch_size=size, batch_size=count, seed=seed).hr_batch(0).float() / 255.0
    rng = np.random.default_rng(seed)
    sigma = torch.from_numpy(rng.uniform(0.0, 75.0, size=count).astype(np.float32) / 255.0)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    return clean + noise * sigma.view(-1, 1, 1, 1), sigma


def set5_psnr(model: str) -> float:
    return evaluate_denoising(DATA / "eval" / "Set5", model, sigma=25.0, device="cpu").mean_psnr_rgb


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="an ffdnet denoiser: built-in name or checkpoint path")
    parser.add_argument("output", type=Path, help="where the narrowed weights go (.safetensors)")
    parser.add_argument("--width", type=int, default=64, help="channels kept per layer (default: 64)")
    parser.add_argument("--patches", type=int, default=64, help="training patches for the statistics")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        loaded = load_model(args.model)
        if loaded.descriptor.architecture != "ffdnet":
            raise VsrError(f"{args.model} is a {loaded.descriptor.architecture} model, not ffdnet")
        model = loaded.module.float()
        if not 0 < args.width < model.num_feat:
            raise VsrError(f"--width must be in 1..{model.num_feat - 1} for this {model.num_feat}-wide model")
        noisy, sigma = noisy_patches(DATA / "train", count=args.patches, size=128, seed=args.seed)
        narrow = narrow_ffdnet(model, mean_activations(model, noisy, sigma), args.width)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in narrow.state_dict().items()}, str(args.output))
        print(f"{args.model}: {model.num_feat} -> {args.width} channels per layer, depth {model.depth}")
        print(f"Set5 sigma 25 RGB PSNR: {set5_psnr(args.model):.3f} -> {set5_psnr(str(args.output)):.3f} dB")
        print(f"wrote {args.output}")
    except VsrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
