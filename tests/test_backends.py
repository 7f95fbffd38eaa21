"""Backend selection, precision choice, and bf16 accuracy on real frames."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vsr.backends import BackendOptions, cpu_has_fast_bf16, create_backend, resolve_device, resolve_precision
from vsr.backends.cpu_prelu import RowPReLU, needs_row_prelu
from vsr.errors import ConfigError, DeviceError
from vsr.models import load_model


def _frames(shared: Path, count: int = 2) -> torch.Tensor:
    out = []
    with av.open(str(shared / "video" / "bigbuckbunny.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 40 == 0:
                rgb = frame.reformat(width=160, height=90, format="rgb24", interpolation="AREA").to_ndarray()
                out.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255)
            if len(out) == count:
                break
    return torch.stack(out)


def test_bf16_output_is_within_45_db_of_fp32_on_real_frames(shared_data: Path) -> None:
    model = load_model(shared_data / "weights" / "realesr-animevideov3.pth")
    x = _frames(shared_data)
    cpu = torch.device("cpu")
    ref = create_backend(
        "torch", model, BackendOptions(device=cpu, precision="fp32", channels_last=False)
    ).run(x)
    out = create_backend("torch", model, BackendOptions(device=cpu, precision="bf16")).run(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (2, 3, 360, 640)
    mse = float(((out.clamp(0, 1) - ref.clamp(0, 1)) ** 2).mean())
    psnr = 10 * math.log10(1 / mse)
    assert 45.0 <= psnr < 90.0, psnr  # an upper bound too: bf16 must actually have been used


@pytest.mark.parametrize("channels", [8, 16, 24, 48, 64])
@pytest.mark.parametrize("size", [(9, 13), (10, 16)])  # an odd pixel count: the native kernel
def test_row_prelu_is_prelu_bit_for_bit(channels: int, size: tuple[int, int]) -> None:
    prelu = torch.nn.PReLU(channels)
    with torch.no_grad():
        prelu.weight.uniform_(-0.5, 1.5)  # negative and above-one slopes too
    prelu = prelu.to(torch.bfloat16)
    x = torch.randn(2, channels, *size).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    x[0, :, 0, 0] = 0.0  # the kink itself
    with torch.inference_mode():
        expected = torch.nn.functional.prelu(x, prelu.weight)
        rows = RowPReLU(prelu)(x)
        assert torch.equal(rows, expected)
        assert rows.is_contiguous(memory_format=torch.channels_last)
        plain = x.contiguous()  # another layout goes to the native kernel, same values
        assert torch.equal(RowPReLU(prelu)(plain), expected)
    assert needs_row_prelu(prelu) == (channels % 32 != 0)  # the native kernel is vectorised per 32
    assert not needs_row_prelu(torch.nn.PReLU(1))  # one shared slope: the native kernel is fine


def test_row_prelu_inside_a_compiled_build_is_one_opaque_call() -> None:
    from vsr.backends.compiled import cxx_compiler

    if cxx_compiler() is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    prelu = torch.nn.PReLU(16)
    with torch.no_grad():
        prelu.weight.uniform_(-0.5, 1.5)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), RowPReLU(prelu)).eval()
    net = net.to(torch.bfloat16, memory_format=torch.channels_last)
    x = torch.rand(1, 3, 12, 20).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    calls: list[str] = []

    def backend(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]):  # type: ignore[no-untyped-def]
        calls.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    with torch.inference_mode():
        expected = net(x)
        assert torch.equal(torch.compile(net, backend=backend, dynamic=False)(x), expected)
    assert "vsr.prelu_rows.default" in calls and not any("prelu." in c and "vsr" not in c for c in calls)


def test_bf16_cpu_backend_runs_fast_x2s_prelus_as_rows_with_the_same_output(shared_data: Path) -> None:
    model = load_model("fast-x2")
    x = _frames(shared_data)
    backend = create_backend("torch", model, BackendOptions(device=torch.device("cpu"), precision="bf16"))
    layers = list(backend._module.modules())  # type: ignore[attr-defined]
    assert sum(isinstance(m, RowPReLU) for m in layers) == 9  # every 16-feature PReLU
    assert not any(isinstance(m, torch.nn.PReLU) for m in layers)
    native = copy.deepcopy(model.module).eval().to(dtype=torch.bfloat16, memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = native(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()
    assert torch.equal(backend.run(x), expected)
    fp32 = create_backend("torch", model, BackendOptions(device=torch.device("cpu"), precision="fp32"))
    assert sum(isinstance(m, RowPReLU) for m in fp32._module.modules()) == 0  # type: ignore[attr-defined]


def test_auto_precision_follows_the_device_and_the_cpu() -> None:
    model = load_model("bicubic", scale=2)
    cpu = torch.device("cpu")
    expected = "bf16" if cpu_has_fast_bf16() else "fp32"
    assert resolve_precision("auto", cpu, model.descriptor) == expected
    assert resolve_precision("auto", torch.device("cuda"), model.descriptor) == "fp16"
    assert resolve_precision("fp32", cpu, model.descriptor) == "fp32"
    with pytest.raises(DeviceError, match="fp16 is not supported on the CPU"):
        resolve_precision("fp16", cpu, model.descriptor)
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu, model.descriptor)


def test_device_and_backend_errors_name_the_fix() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="use --device cpu"):
            resolve_device("cuda")
    model = load_model("lanczos", scale=2)
    with pytest.raises(
        ConfigError,
        match="unknown backend 'tensorrt-x'; choose one of: onnxruntime, tensorrt, tensorrt-rtx, torch",
    ):
        create_backend("tensorrt-x", model, BackendOptions(device=torch.device("cpu"), precision="fp32"))


def test_backend_leaves_the_callers_module_untouched() -> None:
    model = load_model("bicubic", scale=2)
    create_backend("torch", model, BackendOptions(device=torch.device("cpu"), precision="bf16"))
    params = list(model.module.parameters()) + list(model.module.buffers())
    assert all(p.dtype == torch.float32 for p in params if p.is_floating_point())


def test_cuda_graph_option_is_refused_where_it_cannot_run() -> None:
    model = load_model("bicubic", scale=2)
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^CUDA graphs need a CUDA device, not cpu; "):
        create_backend("torch", model, BackendOptions(device=cpu, precision="fp32", cuda_graph=True))
    with pytest.raises(ConfigError, match=r"^choose either torch.compile or CUDA graph capture, not both$"):
        create_backend(
            "torch", model, BackendOptions(device=cpu, precision="fp32", cuda_graph=True, compile=True)
        )


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return 10 * math.log10(1 / mse)


def _cuda() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch sees none)")
    return torch.device("cuda", 0)


@pytest.mark.gpu
def test_fp16_channels_last_on_cuda_is_within_45_db_of_fp32(shared_data: Path) -> None:
    cuda = _cuda()
    model = load_model(shared_data / "weights" / "realesr-animevideov3.pth")
    x = _frames(shared_data).to(cuda)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        ref = create_backend(
            "torch", model, BackendOptions(device=cuda, precision="fp32", channels_last=False)
        ).run(x)
    backend = create_backend("torch", model, BackendOptions(device=cuda, precision="fp16"))
    out = backend.run(x)
    assert (
        out.dtype == torch.float32 and out.device == x.device and out.shape == ref.shape == (2, 3, 360, 640)
    )
    assert 45.0 <= _psnr(out, ref) < 90.0  # an upper bound too: fp16 must actually have been used


@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager_for_each_shape(shared_data: Path) -> None:
    from vsr.backends.torch_backend import TorchBackend

    cuda = _cuda()
    model = load_model(shared_data / "weights" / "realesr-animevideov3.pth")
    eager = create_backend("torch", model, BackendOptions(device=cuda, precision="fp16"))
    graphed = create_backend("torch", model, BackendOptions(device=cuda, precision="fp16", cuda_graph=True))
    assert isinstance(graphed, TorchBackend) and graphed.graphs is not None
    frames = _frames(shared_data, count=3).to(cuda)
    for x in (frames[:1], frames[1:3], frames[2:3], frames[:1, :, :64, :48]):
        got, want = graphed.run(x), eager.run(x)
        # the graph replays the kernels eager mode launches: the same numbers, bit for bit
        assert got.dtype == torch.float32 and torch.equal(got, want)
    # three shapes captured (batch 1 twice is one graph); the outputs are copies, not the static buffer
    assert graphed.graphs.captured == 3
    first = graphed.run(frames[:1])
    second = graphed.run(frames[2:3])
    assert not torch.equal(first, second) and first.data_ptr() != second.data_ptr()


@pytest.mark.gpu
def test_pinned_copy_stream_transfers_round_trip_exactly() -> None:
    from vsr.backends.transfer import HostTransfer

    cuda = _cuda()
    transfer = HostTransfer(cuda)
    rng = np.random.default_rng(5)
    for dtype, top in ((np.uint8, 256), (np.uint16, 1024)):
        arrays = [rng.integers(0, top, size=(36, 64), dtype=dtype) for _ in range(3)]
        up = transfer.upload(arrays)
        assert up.device == cuda and tuple(up.shape) == (3, 36, 64)
        doubled = up.to(torch.int32) * 2  # work on the compute stream, ordered after the upload
        (down,) = transfer.download([doubled])
        assert np.array_equal(down, np.stack(arrays).astype(np.int32) * 2)
