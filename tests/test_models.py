"""Model loading, architecture detection and forward passes against independent references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from safetensors.torch import save_file

import vsr.models
from vsr.errors import ModelError
from vsr.models import (
    ARCHITECTURE_IDS,
    ARCHITECTURES,
    Architecture,
    ArchitectureRegistry,
    RRDBNet,
    SRVGGNetCompact,
    load_model,
    load_state_dict,
)
from vsr.models.builtin import builtin_weights
from vsr.models.compact import build_compact, is_compact
from vsr.models.rrdb import build_rrdb, is_rrdb

ANIME_SHA256_PREFIX = "4e1e09ba96d08bd4"  # from shared/data/MANIFEST.md


@pytest.fixture(scope="module")
def anime_path(shared_data: Path) -> Path:
    if not (path := shared_data / "weights" / "realesr-animevideov3.pth").is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def anime(anime_path: Path) -> vsr.models.LoadedModel:
    return load_model(anime_path)


@pytest.fixture(scope="module")
def frame_crop(shared_data: Path) -> np.ndarray:
    """A 24x32 RGB crop with texture from the first frame of Big Buck Bunny, float64 in [0, 1]."""
    av = pytest.importorskip("av")
    if not (path := shared_data / "video" / "bigbuckbunny.mp4").is_file():
        pytest.skip(f"{path} not found")
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    crop = frame[300:324, 600:632].astype(np.float64) / 255.0
    assert crop.std() > 0.05  # a flat crop would make the reference comparison meaningless
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


# ---- independent float64 numpy reference, written from the raw state dict ----


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Zero-padded 3x3 convolution (cross-correlation) of C x H x W by O x C x 3 x 3."""
    windows = sliding_window_view(np.pad(x, ((0, 0), (1, 1), (1, 1))), (3, 3), axis=(1, 2))
    return np.einsum("chwij,ocij->ohw", windows, w, optimize=True) + b[:, None, None]


def _pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    # out[c, h*r + i, w*r + j] = in[c*r*r + i*r + j, h, w]
    c, h, w = x.shape
    return x.reshape(c // (r * r), r, r, h, w).transpose(0, 3, 1, 4, 2).reshape(c // (r * r), h * r, w * r)


def _pixel_unshuffle(x: np.ndarray, r: int) -> np.ndarray:
    # BasicSR's definition: channel c*r*r + i*r + j holds x[c, h*r + i, w*r + j]
    c, h, w = x.shape
    return x.reshape(c, h // r, r, w // r, r).transpose(0, 2, 4, 1, 3).reshape(c * r * r, h // r, w // r)


def _nearest(x: np.ndarray, r: int) -> np.ndarray:
    return x.repeat(r, axis=1).repeat(r, axis=2)


def _lrelu(x: np.ndarray, slope: float | np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, slope * x)


def _reference_compact(sd: dict[str, torch.Tensor], x: np.ndarray, scale: int) -> np.ndarray:
    last = max(int(k.split(".")[1]) for k in sd)
    out = x
    for i in range(0, last + 1, 2):
        out = _conv3x3(out, _np(sd[f"body.{i}.weight"]), _np(sd[f"body.{i}.bias"]))
        if i < last:  # PReLU, one slope per channel
            out = _lrelu(out, _np(sd[f"body.{i + 1}.weight"])[:, None, None])
    return _pixel_shuffle(out, scale) + _nearest(x, scale)


def _reference_rrdb(sd: dict[str, torch.Tensor], x: np.ndarray, unshuffle: int, num_block: int) -> np.ndarray:
    def conv(name: str, t: np.ndarray) -> np.ndarray:
        return _conv3x3(t, _np(sd[f"{name}.weight"]), _np(sd[f"{name}.bias"]))

    feat = conv("conv_first", _pixel_unshuffle(x, unshuffle) if unshuffle > 1 else x)
    trunk = feat
    for b in range(num_block):
        block_in = trunk
        for r in (1, 2, 3):
            rdb_in = trunk
            dense = [rdb_in]
            for k in (1, 2, 3, 4):
                dense.append(_lrelu(conv(f"body.{b}.rdb{r}.conv{k}", np.concatenate(dense)), 0.2))
            trunk = conv(f"body.{b}.rdb{r}.conv5", np.concatenate(dense)) * 0.2 + rdb_in
        trunk = trunk * 0.2 + block_in
    feat = feat + conv("conv_body", trunk)
    feat = _lrelu(conv("conv_up1", _nearest(feat, 2)), 0.2)
    feat = _lrelu(conv("conv_up2", _nearest(feat, 2)), 0.2)
    return conv("conv_last", _lrelu(conv("conv_hr", feat), 0.2))


# ---- the real Real-ESRGAN compact checkpoint ----


def test_animevideov3_is_detected_from_shapes(anime: vsr.models.LoadedModel, anime_path: Path) -> None:
    d = anime.descriptor
    assert (d.architecture, d.scale, d.in_channels, d.out_channels, d.size_multiple) == (
        "compact",
        4,
        3,
        3,
        1,
    )
    assert dict(d.hyperparameters) == {"num_feat": 64, "num_conv": 16, "act_type": "prelu"}
    assert d.receptive_radius == 18  # 16 body convs + first + last, each one LR pixel
    raw = load_state_dict(anime_path)
    assert d.parameters == sum(t.numel() for t in raw.values()) == 621424
    assert d.sha256 is not None and d.sha256.startswith(ANIME_SHA256_PREFIX)
    assert d.name == "realesr-animevideov3.pth"
    assert isinstance(anime.module, SRVGGNetCompact) and not anime.module.training


def test_animevideov3_matches_float64_reference(
    anime: vsr.models.LoadedModel, anime_path: Path, frame_crop: np.ndarray
) -> None:
    expected = _reference_compact(load_state_dict(anime_path), frame_crop, 4)
    with torch.no_grad():
        got = anime.module(torch.from_numpy(frame_crop).float()[None])[0].double().numpy()
    assert got.shape == (3, 96, 128)
    assert np.abs(got - expected).max() < 1e-4
    # The residual alone would be plain nearest upscaling; the network must have changed it.
    assert np.abs(expected - _nearest(frame_crop, 4)).mean() > 1e-3


def test_compact_under_bf16_autocast_and_channels_last(
    anime: vsr.models.LoadedModel, frame_crop: np.ndarray
) -> None:
    x = torch.from_numpy(frame_crop).float()[None]
    with torch.no_grad():
        ref = anime.module(x)
        last = anime.module(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = anime.module(x.contiguous(memory_format=torch.channels_last))
    assert (last - ref).abs().max().item() < 1e-5
    # bf16 keeps 8 mantissa bits: errors of a few 1/256 at worst, far less on average.
    assert low.dtype == torch.float32  # the residual add promotes to the input's dtype
    err = (low - ref).abs()
    assert err.mean().item() < 4e-3 and err.max().item() < 0.05


@pytest.mark.parametrize(("scale", "act"), [(2, "prelu"), (3, "prelu"), (4, "relu")])
def test_compact_hyperparameters_round_trip(tmp_path: Path, scale: int, act: str) -> None:
    torch.manual_seed(scale)
    net = SRVGGNetCompact(3, 3, num_feat=8, num_conv=3, scale=scale, act_type=act).eval()  # type: ignore[arg-type]
    keys = list(net.state_dict())
    assert keys[:2] == ["body.0.weight", "body.0.bias"] and keys[-1] == "body.8.bias"
    assert ("body.1.weight" in keys) == (act == "prelu")
    path = tmp_path / "compact.safetensors"
    save_file(net.state_dict(), path)
    loaded = load_model(path)
    d = loaded.descriptor
    assert (d.scale, d.hyperparameters["num_feat"], d.hyperparameters["num_conv"]) == (scale, 8, 3)
    assert d.hyperparameters["act_type"] == act
    x = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net(x), rtol=0, atol=1e-6)


# ---- RRDBNet ----


def _random_rrdb(scale: int, num_upsample: int | None = None) -> RRDBNet:
    torch.manual_seed(10 + scale)
    net = RRDBNet(3, 3, scale=scale, num_feat=8, num_block=2, num_grow_ch=4, num_upsample=num_upsample).eval()
    with torch.no_grad():
        for p in net.parameters():  # larger than the default init, so every block visibly matters
            p.uniform_(-0.3, 0.3)
    return net


def _save(sd: dict[str, torch.Tensor], path: Path, container: str) -> None:
    if container == "safetensors":
        save_file(sd, path)
    elif container == "params_ema":
        torch.save({"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}}, path)
    elif container == "state_dict+module":
        torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    else:
        raise AssertionError(container)


@pytest.mark.parametrize("container", ["safetensors", "params_ema", "state_dict+module"])
@pytest.mark.parametrize(("scale", "multiple"), [(4, 1), (2, 2), (1, 4)])
def test_rrdb_detected_and_equal_to_original(
    tmp_path: Path, scale: int, multiple: int, container: str
) -> None:
    net = _random_rrdb(scale)
    path = tmp_path / ("m.safetensors" if container == "safetensors" else "m.pth")
    _save(net.state_dict(), path, container)
    loaded = load_model(path)
    d = loaded.descriptor
    assert (d.architecture, d.scale, d.size_multiple) == ("rrdb", scale, multiple)
    assert dict(d.hyperparameters) == {
        "num_feat": 8,
        "num_block": 2,
        "num_grow_ch": 4,
        "num_upsample": 2,
        "unshuffle": multiple,
    }
    assert d.parameters == sum(p.numel() for p in net.parameters())
    x = torch.rand(1, 3, 8, 12)
    with torch.no_grad():
        got = loaded.module(x)
        torch.testing.assert_close(got, net(x), rtol=0, atol=1e-6)
    assert got.shape == (1, 3, 8 * scale, 12 * scale)


@pytest.mark.parametrize(("scale", "unshuffle"), [(4, 1), (2, 2)])
def test_rrdb_matches_float64_reference(scale: int, unshuffle: int) -> None:
    net = _random_rrdb(scale)
    x = np.random.default_rng(scale).random((3, 8, 12))
    expected = _reference_rrdb(net.state_dict(), x, unshuffle, num_block=2)
    with torch.no_grad():
        got = net.double()(torch.from_numpy(x)[None])[0].numpy()
    assert got.shape == expected.shape == (3, 8 * scale, 12 * scale)
    assert np.abs(got - expected).max() < 1e-9
    assert np.abs(expected).mean() > 0.05  # random weights that give ~0 would prove nothing


def _to_old_esrgan(sd: dict[str, torch.Tensor], num_block: int, num_upsample: int) -> dict[str, torch.Tensor]:
    """The original ESRGAN ``model.N`` sequential layout, written out independently of vsr's converter."""
    old: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        name, param = key.rsplit(".", 1)
        parts = name.split(".")
        if parts[0] == "body":  # body.i.rdbj.convk -> model.1.sub.i.RDBj.convk.0
            new = f"model.1.sub.{parts[1]}.RDB{parts[2][3]}.{parts[3]}.0"
        elif name == "conv_first":
            new = "model.0"
        elif name == "conv_body":
            new = f"model.1.sub.{num_block}"
        elif name.startswith("conv_up"):  # Upsample, conv, LeakyReLU per stage, from index 2
            new = f"model.{3 * int(name[7:])}"
        elif name == "conv_hr":
            new = f"model.{3 * num_upsample + 2}"
        else:
            assert name == "conv_last"
            new = f"model.{3 * num_upsample + 4}"
        old[f"{new}.{param}"] = value
    return old


@pytest.mark.parametrize(("scale", "num_upsample"), [(4, 2), (2, 1), (8, 3)])
def test_old_esrgan_keys_load_to_same_outputs(tmp_path: Path, scale: int, num_upsample: int) -> None:
    net = _random_rrdb(scale, num_upsample)
    old = _to_old_esrgan(net.state_dict(), num_block=2, num_upsample=num_upsample)
    assert "model.1.sub.2.weight" in old and f"model.{3 * num_upsample + 4}.weight" in old
    path = tmp_path / "old.pth"
    torch.save(old, path)
    loaded = load_model(path)
    assert (loaded.descriptor.architecture, loaded.descriptor.scale) == ("rrdb", scale)
    assert loaded.descriptor.hyperparameters["num_upsample"] == num_upsample
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net(x), rtol=0, atol=1e-6)


def test_esrgan_repo_keys_load_to_same_outputs(tmp_path: Path) -> None:
    net = _random_rrdb(4)
    renames = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    repo: dict[str, torch.Tensor] = {}
    for key, value in net.state_dict().items():
        name, param = key.rsplit(".", 1)
        if name.startswith("body."):
            _, i, rdb, conv = name.split(".")
            name = f"RRDB_trunk.{i}.RDB{rdb[3]}.{conv}"
        repo[f"{renames.get(name, name)}.{param}"] = value
    path = tmp_path / "esrgan.pth"
    torch.save(repo, path)
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(load_model(path).module(x), net(x), rtol=0, atol=1e-6)


# ---- errors ----


class _Opaque:
    """A class a checkpoint may pickle; loading it would mean importing and running user code."""


def _one_line(exc: pytest.ExceptionInfo[ModelError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as exc:
        load_model(str(tmp_path / "foo"))
    msg = _one_line(exc)
    assert (
        msg.startswith("unknown model '")
        and f"not a built-in model ({', '.join(['bicubic', 'lanczos', *builtin_weights()])}) and no such file"
        in msg
    )


def test_unrecognised_checkpoint_lists_what_was_found(tmp_path: Path) -> None:
    path = tmp_path / "unet.safetensors"
    save_file({"enc.0.weight": torch.zeros(16, 3, 3, 3), "enc.0.bias": torch.zeros(16)}, path)
    with pytest.raises(ModelError) as exc:
        load_model(path)
    msg = _one_line(exc)
    assert "checkpoint unet.safetensors is not an architecture vsr recognises (compact, rrdb, ffdnet)" in msg
    # safetensors stores keys sorted, so the examples come in that order
    assert "found 2 tensors, e.g. enc.0.bias [16], enc.0.weight [16, 3, 3, 3]" in msg


def test_pickle_needing_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"params": {"body.0.weight": torch.zeros(1)}, "meta": _Opaque()}, path)
    with pytest.raises(ModelError) as exc:
        load_model(path)
    msg = _one_line(exc)
    assert "needs code execution" in msg and "_Opaque" in msg


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_and_truncated_files(tmp_path: Path, suffix: str) -> None:
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(ModelError, match=r"checkpoint garbage\.\w+ .*re-download it"):
        load_model(garbage)
    good = tmp_path / f"good{suffix}"
    _save(_random_rrdb(4).state_dict(), good, "safetensors" if suffix == ".safetensors" else "params_ema")
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match=r"checkpoint truncated\.\w+ .*re-download it"):
        load_model(truncated)


def test_misfitting_tensors_and_wrong_scale(tmp_path: Path) -> None:
    sd = SRVGGNetCompact(num_feat=8, num_conv=2, scale=2).state_dict()
    sd["body.3.weight"] = torch.zeros(5)  # a PReLU with the wrong number of slopes
    path = tmp_path / "bad.safetensors"
    save_file(sd, path)
    with pytest.raises(ModelError, match="looks like a compact model but its tensors do not fit"):
        load_model(path)
    path2 = tmp_path / "x4.safetensors"
    save_file(_random_rrdb(4).state_dict(), path2)
    with pytest.raises(ModelError, match="x4 model but scale 2 was asked"):
        load_model(path2, scale=2)


def test_load_state_dict_unwraps_nested_containers(tmp_path: Path) -> None:
    sd = {"conv.weight": torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / "nested.ckpt"
    torch.save({"state_dict": {"model": {f"module.{k}": v for k, v in sd.items()}}, "step": 3}, path)
    got = load_state_dict(path)
    assert list(got) == ["conv.weight"] and torch.equal(got["conv.weight"], sd["conv.weight"])


# ---- registry and public API ----


def test_registry_order_and_duplicates() -> None:
    assert ARCHITECTURE_IDS == ARCHITECTURES.ids() == ("compact", "rrdb", "ffdnet")
    reg = ArchitectureRegistry([Architecture(id="x", detect=is_compact, build=build_compact)])
    with pytest.raises(ValueError, match="'x' is already registered"):
        reg.register(Architecture(id="x", detect=is_rrdb, build=build_rrdb))
    assert len(reg) == 1
    compact_sd = SRVGGNetCompact(num_feat=4, num_conv=1, scale=2).state_dict()
    rrdb_sd = _random_rrdb(4).state_dict()
    assert [a.id for a in ARCHITECTURES if a.detect(compact_sd)] == ["compact"]
    assert [a.id for a in ARCHITECTURES if a.detect(rrdb_sd)] == ["rrdb"]


def test_public_api_is_complete() -> None:
    public = {
        n for n, v in vars(vsr.models).items() if not n.startswith("_") and not isinstance(v, type(vsr))
    }
    assert public - {"annotations"} == set(vsr.models.__all__)
    assert all(hasattr(vsr.models, n) for n in vsr.models.__all__)
