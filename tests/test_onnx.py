"""ONNX export (vsr.engines) and the onnxruntime backend, checked against PyTorch fp32 on the CPU."""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from torch import nn

import vsr
from vsr.backends import BackendOptions, create_backend
from vsr.backends.onnxruntime_backend import OnnxRuntimeBackend
from vsr.engines import export_onnx, model_fingerprint, onnx_cache_name, read_export_info
from vsr.engines import onnx_export as onnx_export_module
from vsr.errors import ConfigError, DeviceError, ModelError
from vsr.models import load_model
from vsr.models.descriptor import LoadedModel, ModelDescriptor
from vsr.models.rrdb import RRDBNet, build_rrdb

CPU = torch.device("cpu")


def _crop(shared: Path, top: int, left: int, height: int, width: int) -> torch.Tensor:
    rgb = np.asarray(Image.open(shared / "images" / "eval" / "Set14" / "comic.png").convert("RGB"))
    patch = np.ascontiguousarray(rgb[top : top + height, left : left + width])
    return torch.from_numpy(patch).permute(2, 0, 1)[None].float() / 255


def _torch_fp32(model: LoadedModel, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model.module(x).numpy()


def _ort(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2).mean())
    return 10 * math.log10(1 / mse)


def _dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def compact(shared_data: Path) -> LoadedModel:
    return load_model(shared_data / "weights" / "realesr-animevideov3.pth")


@pytest.fixture(scope="module")
def rrdb_x2() -> LoadedModel:
    # Small and random but built through the checkpoint path, so the descriptor (x2 by pixel
    # unshuffle, size multiple 2) is what a real RealESRGAN_x2plus would get.
    torch.manual_seed(0)
    net = RRDBNet(3, 3, scale=2, num_feat=16, num_block=2, num_grow_ch=8)
    return build_rrdb(net.state_dict(), name="random-rrdb-x2", sha256=None)


def test_compact_fp32_export_matches_pytorch_at_two_sizes_with_one_file(
    compact: LoadedModel, shared_data: Path, tmp_path: Path
) -> None:
    path = export_onnx(compact, tmp_path / "compact.onnx")
    graph = onnx.load(path).graph
    assert _dims(graph.input[0]) == ["batch", 3, "height", "width"]
    assert _dims(graph.output[0]) == ["batch", 3, "out_height", "out_width"]
    session = _ort(path)
    # two sizes and two batch sizes through the same file: the graph really is dynamic
    for x in (_crop(shared_data, 100, 120, 48, 64), torch.cat([_crop(shared_data, 20, 30, 40, 56)] * 2)):
        ref = _torch_fp32(compact, x)
        (out,) = session.run(["output"], {"input": x.numpy()})
        assert out.shape == ref.shape == (x.shape[0], 3, 4 * x.shape[2], 4 * x.shape[3])
        assert float(np.abs(out - ref).max()) < 1e-4


def test_rrdb_x2_fp32_export_matches_pytorch(rrdb_x2: LoadedModel, tmp_path: Path) -> None:
    path = export_onnx(rrdb_x2, tmp_path / "rrdb.onnx")
    session = _ort(path)
    gen = torch.Generator().manual_seed(1)
    for shape in ((1, 3, 16, 24), (2, 3, 22, 10)):
        x = torch.rand(shape, generator=gen)
        ref = _torch_fp32(rrdb_x2, x)
        (out,) = session.run(["output"], {"input": x.numpy()})
        assert out.shape == ref.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        assert float(np.abs(ref).max()) > 1e-2  # the comparison below is not between two near-zeros
        assert float(np.abs(out - ref).max()) < 1e-4


def test_fp16_export_is_an_fp16_network_close_to_fp32(
    compact: LoadedModel, shared_data: Path, tmp_path: Path
) -> None:
    path = export_onnx(compact, tmp_path / "compact16.onnx", precision="fp16")
    graph = onnx.load(path).graph
    fp16 = onnx.TensorProto.FLOAT16
    assert graph.input[0].type.tensor_type.elem_type == fp16
    assert graph.output[0].type.tensor_type.elem_type == fp16
    weight_types = {onnx.TensorProto.DataType.Name(t.data_type) for t in graph.initializer}
    assert weight_types == {"FLOAT16"} and len(graph.initializer) == 53  # 18 convs x 2 + 17 PReLU
    # no Cast nodes: a strongly typed TensorRT network built from this runs in fp16 throughout
    assert not [n for n in graph.node if n.op_type == "Cast"]
    x = _crop(shared_data, 200, 150, 64, 80)
    (out,) = _ort(path).run(["output"], {"input": x.numpy().astype(np.float16)})
    assert out.dtype == np.float16
    psnr = _psnr(out.astype(np.float32), _torch_fp32(compact, x))
    # Measured 74.5 dB on onnxruntime 1.31's CPU fp16 kernels (torch's CPU fp16: 72.9 dB); 60 dB
    # leaves room for other CPUs' kernels and is well above the 45 dB asked of GPU fp16. Above
    # ~80 dB is impossible with a float16 output (its rounding alone costs that), so < 90 dB
    # also proves the output really went through fp16.
    assert 60.0 <= psnr < 90.0, psnr


def test_metadata_round_trips_for_a_checkpoint(compact: LoadedModel, tmp_path: Path) -> None:
    info = read_export_info(export_onnx(compact, tmp_path / "c.onnx", opset=18))
    file_sha = compact.descriptor.sha256
    assert file_sha is not None and len(file_sha) == 64
    assert (info.architecture, info.name, info.scale, info.size_multiple) == (
        "compact",
        "realesr-animevideov3.pth",
        4,
        1,
    )
    assert (info.precision, info.opset, info.dynamic) == ("fp32", 18, True)
    assert info.checkpoint_sha256 == info.fingerprint == file_sha
    assert info.vsr_version == vsr.__version__
    assert onnx.load(tmp_path / "c.onnx").opset_import[0].version == 18


def test_metadata_round_trips_without_a_checkpoint_file(rrdb_x2: LoadedModel, tmp_path: Path) -> None:
    info = read_export_info(export_onnx(rrdb_x2, tmp_path / "r.onnx", precision="fp16"))
    assert (info.architecture, info.scale, info.size_multiple, info.precision) == ("rrdb", 2, 2, "fp16")
    assert info.checkpoint_sha256 is None
    assert info.fingerprint == model_fingerprint(rrdb_x2) and len(info.fingerprint) == 64


def test_checkpoint_sha256_is_the_files(compact: LoadedModel, shared_data: Path) -> None:
    data = (shared_data / "weights" / "realesr-animevideov3.pth").read_bytes()
    assert model_fingerprint(compact) == hashlib.sha256(data).hexdigest()


def test_classic_resizers_export_only_with_a_fixed_size(tmp_path: Path) -> None:
    model = load_model("bicubic", scale=2)
    with pytest.raises(ModelError, match=r"cannot be exported with dynamic sizes.*dynamic=False"):
        export_onnx(model, tmp_path / "bicubic.onnx")
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind
    with pytest.raises(ConfigError, match="needs input_size"):
        export_onnx(model, tmp_path / "bicubic.onnx", dynamic=False)
    path = export_onnx(model, tmp_path / "bicubic.onnx", dynamic=False, input_size=(12, 20))
    x = torch.rand(1, 3, 12, 20, generator=torch.Generator().manual_seed(2))
    (out,) = _ort(path).run(["output"], {"input": x.numpy()})
    assert float(np.abs(out - _torch_fp32(model, x)).max()) < 1e-5
    assert _dims(onnx.load(path).graph.input[0]) == [1, 3, 12, 20]


class _SizeDependent(nn.Module):
    """A third-party-style forward that branches on the input width in Python."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.shape[-1] > 8 else x


def test_size_dependent_python_in_forward_is_refused_for_dynamic_export(tmp_path: Path) -> None:
    model = LoadedModel(
        module=_SizeDependent(), descriptor=ModelDescriptor(architecture="x", name="odd", scale=1)
    )
    with pytest.raises(ModelError, match="model odd cannot be exported with dynamic sizes"):
        export_onnx(model, tmp_path / "odd.onnx")
    with pytest.raises(ConfigError, match="opset 9 is not supported"):
        export_onnx(model, tmp_path / "odd.onnx", opset=9)


def test_backend_runs_and_reuses_its_cached_export(
    rrdb_x2: LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the backend caches under ./engines, as the CLI does
    exports: list[Path] = []
    real_export = onnx_export_module.export_onnx

    def counting_export(*args: object, **kwargs: object) -> Path:
        path = real_export(*args, **kwargs)  # type: ignore[arg-type]
        exports.append(path)
        return path

    monkeypatch.setattr(onnx_export_module, "export_onnx", counting_export)
    options = BackendOptions(device=CPU, precision="fp32")
    backend = create_backend("onnxruntime", rrdb_x2, options)
    expected = Path("engines") / onnx_cache_name(rrdb_x2, precision="fp32")
    assert isinstance(backend, OnnxRuntimeBackend) and backend.onnx_path == expected
    assert exports == [expected] and expected.is_file()
    x = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(3))
    y = backend.run(x)
    assert y.dtype == torch.float32 and y.shape == (2, 3, 24, 32)
    assert float((y - torch.from_numpy(_torch_fp32(rrdb_x2, x))).abs().max()) < 1e-4

    mtime = expected.stat().st_mtime_ns
    again = create_backend("onnxruntime", rrdb_x2, options)
    assert exports == [expected] and expected.stat().st_mtime_ns == mtime  # reused, not re-exported
    assert torch.equal(again.run(x), y)

    # A file under the right name with the wrong content (here the fp16 export) is replaced.
    os.replace(export_onnx(rrdb_x2, tmp_path / "other.onnx", precision="fp16"), expected)
    create_backend("onnxruntime", rrdb_x2, options)
    assert len(exports) == 2 and read_export_info(expected).precision == "fp32"
    expected.write_bytes(b"not a protobuf")  # a corrupt file is exported again too
    create_backend("onnxruntime", rrdb_x2, options)
    assert len(exports) == 3 and read_export_info(expected).fingerprint == model_fingerprint(rrdb_x2)


def test_cache_name_follows_weights_precision_and_opset(rrdb_x2: LoadedModel) -> None:
    name = onnx_cache_name(rrdb_x2, precision="fp32")
    assert name.startswith("rrdb-x2-") and name.endswith("-fp32-opset17.onnx")
    assert onnx_cache_name(rrdb_x2, precision="fp16") != name
    assert onnx_cache_name(rrdb_x2, precision="fp32", opset=18) != name
    changed = RRDBNet(3, 3, scale=2, num_feat=16, num_block=2, num_grow_ch=8)
    changed.load_state_dict(rrdb_x2.module.state_dict())
    with torch.no_grad():
        changed.conv_last.bias[0] += 1e-3
    other = LoadedModel(module=changed, descriptor=rrdb_x2.descriptor)
    assert onnx_cache_name(other, precision="fp32") != name


def test_backend_without_onnxruntime_says_how_to_install(
    rrdb_x2: LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(DeviceError, match=r"needs the onnxruntime package.*pip install 'vsr\[onnx\]'"):
        create_backend("onnxruntime", rrdb_x2, BackendOptions(device=CPU, precision="fp32"))
    assert not Path("engines").exists()  # failed before exporting anything


def test_backend_precisions(rrdb_x2: LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    x = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(4))
    ref = torch.from_numpy(_torch_fp32(rrdb_x2, x))
    y = create_backend("onnxruntime", rrdb_x2, BackendOptions(device=CPU, precision="fp16")).run(x)
    assert y.dtype == torch.float32
    # fp16 rounding of outputs around 0.1 is ~3e-5 per step: an error, but a small one
    assert 0.0 < float((y - ref).abs().max()) < 2e-3
    with pytest.raises(DeviceError, match="runs fp32 or fp16, not bf16"):
        create_backend("onnxruntime", rrdb_x2, BackendOptions(device=CPU, precision="bf16"))
