"""Third-party checkpoints through spandrel: descriptors, outputs equal to spandrel's, runs, errors.

The models are built from spandrel's own architecture classes with random weights, tiny, saved
as ``.pth`` and ``.safetensors``, and loaded back through `vsr.models.load_model` as a user's
checkpoint would be. Tests that need spandrel skip, saying so, when it is not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from vsr.cli import app
from vsr.errors import ModelError
from vsr.models import SRVGGNetCompact, load_model
from vsr.models.spandrel_loader import (
    UNKNOWN_RECEPTIVE_RADIUS,
    SpandrelDenoiser,
    SpandrelSR,
    _StandInModule,
    import_spandrel,
)

from clips import write_clip

SPANDREL = import_spandrel()
needs_spandrel = pytest.mark.skipif(
    SPANDREL is None, reason="spandrel is not installed (pip install 'vsr[spandrel]')"
)
TOLERANCE = 1e-5  # fp32, max abs difference


def _save(net: nn.Module, path: Path) -> Path:
    state = net.state_dict()
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return path


def _randomise(net: nn.Module) -> nn.Module:
    # the architecture's own init plus noise: no layer stays at zero (or the identity), and the
    # output stays mostly inside [0, 1] so spandrel's clamped output still says something
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net


@dataclass(frozen=True)
class Case:
    file: str
    build: Callable[[], nn.Module]
    arch: str
    task: str
    scale: int
    size_multiple: int
    noise_level: str | None  # "input", "blind"; None for SR
    precisions: frozenset[str]


def _cases() -> list[Case]:
    if SPANDREL is None:
        return []
    from spandrel.architectures.DnCNN import DnCNN
    from spandrel.architectures.DRUNet import DRUNet
    from spandrel.architectures.SCUNet import SCUNet
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    fp32_bf16 = frozenset({"fp32", "bf16"})
    every = frozenset({"fp32", "fp16", "bf16"})
    return [
        Case("dncnn.pth", lambda: DnCNN(in_nc=3, out_nc=3, nc=8, nb=8, act_mode="R"),
             "DnCNN", "denoise", 1, 1, "blind", fp32_bf16),
        Case("fdncnn.safetensors", lambda: DnCNN(in_nc=4, out_nc=3, nc=8, nb=8, act_mode="R", mode="FDnCNN"),
             "DnCNN", "denoise", 1, 1, "input", fp32_bf16),
        Case("drunet.pth", lambda: DRUNet(in_nc=4, out_nc=3, nc=[8, 16, 32, 64], nb=2),
             "DRUNet", "denoise", 1, 8, "input", fp32_bf16),
        # SCUNet's attention heads are 32 wide, so 64 (two halves of 32) is its smallest width
        Case("scunet.safetensors", lambda: SCUNet(in_nc=3, config=[1] * 7, dim=64),
             "SCUNet", "denoise", 1, 1, "blind", every),
        Case("swinir_x2.safetensors",
             lambda: SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2.0,
                            upscale=2, upsampler="pixelshuffledirect"),
             "SwinIR", "sr", 2, 1, None, fp32_bf16),
        Case("span_x2.pth", lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2),
             "SPAN", "sr", 2, 1, None, every),
    ]  # fmt: skip


CASES = _cases()


def _checkpoint(tmp_path: Path, file: str) -> Path:
    case = next(c for c in CASES if c.file == file)
    return _save(_randomise(case.build()), tmp_path / case.file)


@needs_spandrel
@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_checkpoint_loads_with_spandrels_facts_and_outputs(tmp_path: Path, case: Case) -> None:
    assert SPANDREL is not None
    path = _checkpoint(tmp_path, case.file)
    loaded = load_model(path)
    d = loaded.descriptor
    assert d.architecture == f"spandrel-{case.arch}" and (d.task, d.scale) == (case.task, case.scale)
    assert (d.in_channels, d.out_channels, d.size_multiple) == (3, 3, case.size_multiple)
    assert d.precisions == case.precisions and d.receptive_radius == UNKNOWN_RECEPTIVE_RADIUS
    assert d.hyperparameters.get("noise_level") == case.noise_level
    assert d.hyperparameters["spandrel"] == SPANDREL.__version__ and d.name == case.file
    assert d.sha256 is not None and len(d.sha256) == 64 and d.temporal_window == 1
    module = loaded.module
    assert isinstance(module, SpandrelSR if case.task == "sr" else SpandrelDenoiser)
    assert not module.training and not any(p.requires_grad for p in module.parameters())

    ref: Any = SPANDREL.ModelLoader().load_from_file(path).eval()
    assert d.parameters == sum(p.numel() for p in ref.model.parameters()) > 0
    sigma = 15 / 255  # what spandrel's own call passes to noise-level models

    def ours(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(x) if case.task == "sr" else module(x, sigma)

    def bare(x: torch.Tensor) -> torch.Tensor:
        # spandrel's own padding, then its network unclamped, cropped back
        from spandrel.__helpers.size_req import pad_tensor

        _, padded = pad_tensor(x, ref.size_requirements)
        if case.noise_level == "input":
            padded = torch.cat([padded, torch.full_like(padded[:, :1], sigma)], 1)
        with torch.inference_mode():
            return ref.model(padded)[..., : x.shape[-2] * case.scale, : x.shape[-1] * case.scale]

    torch.manual_seed(1)
    x = torch.rand(2, 3, 48, 48)  # needs no padding
    odd = torch.rand(1, 3, 37, 29)  # odd, and below SCUNet's and SwinIR's minimum sizes
    for inp in (x, odd):
        y = ours(inp)
        assert y.shape == (inp.shape[0], 3, inp.shape[-2] * case.scale, inp.shape[-1] * case.scale)
        assert (y - bare(inp)).abs().max().item() <= TOLERANCE
    # spandrel's public call (which clamps) agrees too
    assert (ours(odd).clamp(0, 1) - ref(odd)).abs().max().item() <= TOLERANCE
    # channels_last (what the denoise pre-pass gives on CPUs) gives the same
    assert (ours(x.to(memory_format=torch.channels_last)) - ours(x)).abs().max().item() <= TOLERANCE


@needs_spandrel
def test_noise_level_models_take_the_pre_pass_sigma_per_image(tmp_path: Path) -> None:
    module = load_model(_checkpoint(tmp_path, "drunet.pth")).module
    x = torch.rand(2, 3, 32, 40)
    with torch.inference_mode():
        both = module(x, torch.tensor([5 / 255, 40 / 255]))
        low, high = module(x[:1], 5 / 255), module(x[1:], 40 / 255)
        assert (both - torch.cat([low, high])).abs().max().item() <= TOLERANCE
        assert (module(x[:1], 40 / 255) - low).abs().mean().item() > 1e-3  # the level is used
    blind = load_model(_checkpoint(tmp_path, "dncnn.pth")).module
    with torch.inference_mode():
        assert torch.equal(blind(x, 5 / 255), blind(x, 40 / 255))  # a blind denoiser ignores it


@needs_spandrel
def test_vsrs_own_architectures_are_detected_before_spandrel(tmp_path: Path) -> None:
    # spandrel knows SRVGGNetCompact too ("Compact"); vsr's own loader must keep it
    path = _save(SRVGGNetCompact(num_feat=4, num_conv=1, scale=2), tmp_path / "compact.pth")
    loaded = load_model(path)
    assert loaded.descriptor.architecture == "compact" and isinstance(loaded.module, SRVGGNetCompact)


@needs_spandrel
def test_importing_spandrel_leaves_no_torchvision_stand_in() -> None:
    assert not any(isinstance(sys.modules.get(n), _StandInModule) for n in list(sys.modules))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@needs_spandrel
def test_upscale_with_a_spandrel_sr_checkpoint(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", width=40, height=32, frames=5)
    model = _checkpoint(tmp_path, "span_x2.pth")
    out = tmp_path / "out.mp4"
    fast = ["--preset", "ultrafast", "--precision", "fp32", "-q"]
    result = CliRunner().invoke(app, ["upscale", str(src), str(out), "-m", str(model), *fast])
    assert result.exit_code == 0, result.output
    frames = _frames(out)
    assert len(frames) == 5 and frames[0].shape == (64, 80, 3)


@needs_spandrel
def test_upscale_with_a_spandrel_denoiser(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", width=40, height=32, frames=5)
    denoiser = _checkpoint(tmp_path, "drunet.pth")
    common = ["-m", "bicubic", "-s", "2", "--preset", "ultrafast", "--precision", "fp32", "-q"]
    runner = CliRunner()
    plain, denoised = tmp_path / "plain.mp4", tmp_path / "denoised.mp4"
    result = runner.invoke(app, ["upscale", str(src), str(plain), *common])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["upscale", str(src), str(denoised), *common, "--denoise", "25", "--denoiser", str(denoiser)]
    )
    assert result.exit_code == 0, result.output
    a, b = _frames(plain), _frames(denoised)
    assert len(a) == len(b) == 5 and b[0].shape == (64, 80, 3)
    assert np.abs(a[0].astype(int) - b[0].astype(int)).mean() > 2  # the denoiser ran


def _unknown(tmp_path: Path) -> Path:
    path = tmp_path / "unet.safetensors"
    save_file({"enc.0.weight": torch.zeros(16, 3, 3, 3), "enc.0.bias": torch.zeros(16)}, path)
    return path


def _message(path: Path) -> str:
    with pytest.raises(ModelError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_unknown_checkpoint_without_spandrel_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "spandrel", None)  # `import spandrel` fails: not installed
    msg = _message(_unknown(tmp_path))
    assert msg.startswith(
        "checkpoint unet.safetensors is not an architecture vsr recognises (compact, rrdb, ffdnet)"
    )
    assert "found 2 tensors" in msg and msg.endswith("; pip install 'vsr[spandrel]' may load it")


@needs_spandrel
def test_unknown_checkpoint_with_spandrel_names_the_file_and_spandrels_reason(tmp_path: Path) -> None:
    assert SPANDREL is not None
    msg = _message(_unknown(tmp_path))
    assert msg.startswith("checkpoint unet.safetensors is not an architecture vsr recognises")
    assert msg.endswith(f"; spandrel {SPANDREL.__version__} does not recognise it either")
    # keys spandrel takes for DRUNet, a tensor that does not fit
    state = _randomise(CASES[2].build()).state_dict()
    state["m_tail.weight"] = torch.zeros(3, 8, 5, 5)
    path = tmp_path / "bent_drunet.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    msg = _message(path)
    assert msg.startswith(
        f"checkpoint bent_drunet.safetensors looks like a DRUNet model to spandrel {SPANDREL.__version__} "
        "but it cannot load it (RuntimeError: "
    )
    assert "m_tail.weight" in msg


@needs_spandrel
@pytest.mark.parametrize(
    ("purpose", "why"), [("FaceSR", "needs aligned face crops"), ("Inpainting", "needs a mask")]
)
def test_face_and_inpainting_models_are_refused_in_one_line(purpose: str, why: str) -> None:
    from vsr.models.spandrel_loader import _loaded

    # what spandrel returns for GFPGAN or LaMa, reduced to what vsr reads before refusing
    fake = SimpleNamespace(architecture=SimpleNamespace(id="Arch"), purpose=purpose)
    with pytest.raises(ModelError) as exc:
        _loaded(SPANDREL, fake, name="m.pth", sha256=None)  # type: ignore[arg-type]
    msg = str(exc.value)
    assert msg.startswith(f"checkpoint m.pth is a Arch model (spandrel: {purpose}), ") and why in msg
    assert msg.endswith("vsr does not run it") and "\n" not in msg
