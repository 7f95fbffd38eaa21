"""Engine identity and cache (vsr.engines): profiles, names, manifests, and validation against a runtime."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from pathlib import Path

import pytest

from vsr.engines import (
    EngineManifest,
    Environment,
    GpuInfo,
    check_engine,
    choose_profile,
    engine_file_name,
    find_engine,
    list_engines,
    parse_profiles,
    read_manifest,
    rebuild_command,
)
from vsr.engines.manifest import manifest_path, write_manifest
from vsr.engines.profiles import profile_tag
from vsr.engines.targets import parse_compute_capabilities
from vsr.errors import ConfigError, EngineError

H200 = GpuInfo(name="NVIDIA H200", compute_capability="9.0")
RTX4090 = GpuInfo(name="NVIDIA GeForce RTX 4090", compute_capability="8.9")
RTX_KNOWN = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")


def _profiles(*specs: str, multiple: int = 1, batch: int = 1):
    return parse_profiles(specs, size_multiple=multiple, channels=3, batch=batch)


def _manifest(**changes: object) -> EngineManifest:
    base = EngineManifest(
        engine_file="m.engine",
        engine_sha256="0" * 64,
        engine_bytes=0,
        model_source="weights/model.pth",
        model_name="model.pth",
        model_sha256="a" * 64,
        architecture="compact",
        scale=4,
        in_channels=3,
        out_channels=3,
        size_multiple=1,
        precision="fp16",
        profiles=_profiles("720p"),
        profile_specs=("720p",),
        batch=1,
        builder="tensorrt",
        builder_version="10.13.0.35",
        network_typing="weak",
        gpu_name=H200.name,
        compute_capability=H200.compute_capability,
        target_compute_capabilities=(),
        optimization_level=3,
        onnx_sha256="b" * 64,
        onnx_opset=17,
        vsr_version="0.1.0",
        built_at="2026-01-01T00:00:00+00:00",
        build_seconds=1.5,
        parity_psnr_db=61.2,
        parity_note="measured",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _install(folder: Path, manifest: EngineManifest, data: bytes = b"serialized engine") -> Path:
    """An engine file and its manifest, as build_engine leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    m = dataclasses.replace(manifest, engine_sha256=hashlib.sha256(data).hexdigest(), engine_bytes=len(data))
    (folder / m.engine_file).write_bytes(data)
    write_manifest(m, folder)
    return folder / m.engine_file


def _env(
    builder: str = "tensorrt", version: str | None = "10.13.0.35", gpu: GpuInfo | None = H200
) -> Environment:
    known = RTX_KNOWN if builder == "tensorrt-rtx" else ()
    return Environment(builder=builder, version=version, gpu=gpu, problem="not here", known_targets=known)  # type: ignore[arg-type]


def test_named_sizes_are_fixed_profiles_rounded_up_to_the_size_multiple() -> None:
    p480, p720 = _profiles("480p,720p", multiple=4, batch=2)
    # 854 is not a multiple of 4: the pipeline pads such frames to 856, so that is what the engine sees
    assert (p480.min, p480.opt, p480.max) == ((1, 3, 480, 856), (2, 3, 480, 856), (2, 3, 480, 856))
    assert p480.label == "480p" and p720.max == (2, 3, 720, 1280)
    (ranged,) = _profiles("min:64x48,opt:256x144,max:1280x720", multiple=2)
    assert (ranged.min, ranged.opt, ranged.max) == ((1, 3, 48, 64), (1, 3, 144, 256), (1, 3, 720, 1280))
    assert ranged.label == "64x48-256x144-1280x720"
    # WxH is a fixed size too; a size given twice is one profile
    assert [p.label for p in _profiles("720p,1280x720", "1280x720", "640x360")] == ["720p", "640x360"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("720", "'720' is not a frame size"),
        ("min:64x64,max:128x128", "exactly min:WxH,opt:WxH,max:WxH"),
        ("min:64x64,opt:32x32,max:128x128", "must grow"),
        ("99999x10", "outside 1x1 to 8192x8192"),
        (",", "names no size"),
    ],
)
def test_bad_profiles_are_usage_errors(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        _profiles(spec)
    assert info.value.exit_code == 2
    with pytest.raises(ConfigError, match="--batch must be 1 to 64"):
        _profiles("720p", batch=0)


def test_profile_choice_prefers_the_exact_opt_then_the_tightest_range() -> None:
    profiles = _profiles("min:64x64,opt:512x512,max:2048x2048", "min:64x64,opt:256x256,max:1024x1024", "720p")
    assert choose_profile(profiles, (1, 3, 720, 1280)) == 2  # exact opt beats the wide range
    assert choose_profile(profiles, (1, 3, 512, 512)) == 0  # exact opt
    assert choose_profile(profiles, (1, 3, 300, 300)) == 1  # both cover: the smaller max
    assert choose_profile(profiles, (1, 3, 1500, 900)) == 0
    assert choose_profile(profiles, (2, 3, 300, 300)) is None  # batch above every max
    assert choose_profile(profiles, (1, 1, 300, 300)) is None  # wrong channel count


def test_profile_tag_is_readable_or_a_stable_hash() -> None:
    assert profile_tag(_profiles("480p,720p,1080p")) == "480p+720p+1080p"
    many = _profiles("min:8x8,opt:640x360,max:1920x1080", "min:8x8,opt:1280x720,max:3840x2160")
    tag = profile_tag(many)
    assert tag.startswith("2profiles-") and len(tag) == len("2profiles-") + 8
    other = _profiles("min:8x8,opt:640x360,max:1920x1080", "min:8x8,opt:1280x720,max:3840x2168")
    assert profile_tag(other) != tag


def test_compute_capability_lists_parse_and_sort() -> None:
    assert parse_compute_capabilities("12.0, 8.6,8.9,8.6") == ("8.6", "8.9", "12.0")
    with pytest.raises(ConfigError, match="bad compute capability '86'"):
        parse_compute_capabilities("86")


def test_manifest_round_trips_and_refuses_incomplete_json(tmp_path: Path) -> None:
    m = _manifest(profiles=_profiles("480p", "min:64x64,opt:128x128,max:256x256"), parity_psnr_db=None)
    path = write_manifest(m, tmp_path)
    assert path == tmp_path / "m.json"
    assert read_manifest(path) == m
    data = json.loads(path.read_text())
    assert data["profiles"][1]["opt"] == [1, 3, 128, 128] and data["parity_psnr_db"] is None
    del data["onnx_sha256"]
    path.write_text(json.dumps(data))
    with pytest.raises(EngineError, match=r"not a readable vsr engine manifest \(missing \['onnx_sha256'\]"):
        read_manifest(path)
    path.write_text(json.dumps({**json.loads(m.to_json()), "format": 99}))
    with pytest.raises(EngineError, match="format 99"):
        read_manifest(path)


def test_engine_name_carries_every_part_of_the_identity() -> None:
    args: dict[str, object] = dict(
        architecture="compact",
        scale=4,
        model_sha256="4e1e09ba96d08bd4" + "0" * 48,
        onnx_sha256="acdc3318" + "0" * 56,
        precision="fp16",
        profiles=_profiles("720p,1080p"),
        batch=1,
        builder="tensorrt",
        builder_version="10.13.0.35",
        device_tag=H200.tag,
    )
    name = engine_file_name(**args)  # type: ignore[arg-type]
    assert (
        name
        == "compact-x4-4e1e09ba96d0-onnxacdc3318-fp16-720p+1080p-b1-trt10.13.0.35-nvidia-h200-sm90.engine"
    )
    changes = {
        "model_sha256": "f" * 64,
        "onnx_sha256": "e" * 64,
        "precision": "fp32",
        "profiles": _profiles("720p"),
        "batch": 2,
        "builder_version": "11.4.0.106",
        "device_tag": RTX4090.tag,
    }
    for key, value in changes.items():
        assert engine_file_name(**{**args, key: value}) != name, key  # type: ignore[arg-type]


def test_rebuild_command_repeats_the_build(tmp_path: Path) -> None:
    m = _manifest(model_source="my weights/x.pth", profile_specs=("480p,720p", "min:8x8,opt:16x16,max:32x32"))
    args = shlex.split(rebuild_command(m, tmp_path / "eng dir"))
    assert args == [
        "vsr", "build-engine", "my weights/x.pth", "--precision", "fp16",
        "--profile", "480p,720p", "--profile", "min:8x8,opt:16x16,max:32x32",
        "--batch", "1", "--target", "tensorrt", "--out", str(tmp_path / "eng dir"),
    ]  # fmt: skip
    rtx = _manifest(builder="tensorrt-rtx", target_compute_capabilities=("8.6", "12.0"))
    assert shlex.split(rebuild_command(rtx, tmp_path, add_target="8.9"))[-2:] == [
        "--compute-capability",
        "8.6,8.9,12.0",
    ]
    # an engine built for the default targets keeps them when one is added
    default = _manifest(builder="tensorrt-rtx")
    assert rebuild_command(default, tmp_path, add_target="7.5").endswith(
        "--compute-capability 7.5,8.0,8.6,8.9,12.0"
    )


def test_a_matching_engine_is_valid_and_a_foreign_gpu_is_refused(tmp_path: Path) -> None:
    engine = _install(tmp_path, _manifest())
    check = check_engine(engine, environment=_env(), model_sha256="a" * 64)
    assert (check.status, check.valid) == ("valid", True)
    assert check.reason == "runs here: TensorRT 10.13.0.35 on NVIDIA H200 (sm 9.0)"
    other_cc = check_engine(engine, environment=_env(gpu=RTX4090))
    assert (
        other_cc.status == "foreign"
        and "built for NVIDIA H200 (sm 9.0), this GPU is NVIDIA GeForce" in other_cc.reason
    )
    same_cc = check_engine(
        engine, environment=_env(gpu=GpuInfo(name="NVIDIA H100", compute_capability="9.0"))
    )
    assert same_cc.status == "foreign"
    message = same_cc.refusal()
    assert message.startswith(f"engine {engine} is foreign: it was built for NVIDIA H200")
    assert message.endswith(
        f"rebuild it: vsr build-engine weights/model.pth --precision fp16 --profile 720p --batch 1 --target tensorrt --out {tmp_path}"
    )


def test_stale_engines_say_what_changed(tmp_path: Path) -> None:
    engine = _install(tmp_path, _manifest())
    newer = check_engine(engine, environment=_env(version="11.4.0.106"))
    assert newer.status == "stale"
    assert "built by TensorRT 10.13.0.35 and TensorRT 11.4.0.106 is installed" in newer.reason
    weights = check_engine(engine, environment=_env(), model_sha256="c" * 64)
    assert weights.status == "stale" and "sha256 aaaaaaaaaaaa, now cccccccccccc" in weights.reason
    # without a model given, the checkpoint named in the manifest is hashed when it exists here
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"new weights")
    moved = _install(tmp_path / "c", _manifest(model_source=str(ckpt)))
    assert check_engine(moved, environment=_env()).status == "stale"
    right = _install(
        tmp_path / "d",
        _manifest(model_source=str(ckpt), model_sha256=hashlib.sha256(b"new weights").hexdigest()),
    )
    assert check_engine(right, environment=_env()).status == "valid"


def test_broken_engines_are_told_apart_from_intact_ones(tmp_path: Path) -> None:
    engine = _install(tmp_path, _manifest())
    engine.write_bytes(
        b"serialized engin"
    )  # truncated by one byte: the size check alone would pass many copies
    check = check_engine(engine, environment=_env())
    assert check.status == "broken" and "sha256 differs" in check.reason
    manifest_path(engine).unlink()
    lonely = check_engine(engine, environment=_env())
    assert (lonely.status, lonely.rebuild) == ("broken", None)
    assert lonely.refusal().endswith(
        "it has no manifest (m.json) beside it; delete it and build the engine again"
    )
    orphan = _install(tmp_path / "o", _manifest())
    orphan.unlink()
    assert "engine file is missing" in check_engine(orphan, environment=_env()).reason


def test_unchecked_when_this_machine_cannot_judge(tmp_path: Path) -> None:
    engine = _install(tmp_path, _manifest())
    no_gpu = check_engine(engine, environment=_env(gpu=None))
    assert (no_gpu.status, no_gpu.valid) == ("unchecked", False)
    assert no_gpu.reason == "no CUDA GPU here to check it against; it runs on NVIDIA H200 (sm 9.0)"
    missing = check_engine(engine, environment=_env(version=None))
    assert missing.status == "unchecked" and "TensorRT is not installed here (not here)" in missing.reason


def test_rtx_engines_run_on_their_target_compute_capabilities(tmp_path: Path) -> None:
    rtx = _manifest(builder="tensorrt-rtx", builder_version="1.7.1.116", network_typing="strong", gpu_name=None,
                    compute_capability=None, target_compute_capabilities=("8.6", "8.9"))  # fmt: skip
    engine = _install(tmp_path, rtx)
    assert check_engine(engine, environment=_env("tensorrt-rtx", "1.7.1.116", RTX4090)).status == "valid"
    ampere = GpuInfo(name="NVIDIA RTX A4000", compute_capability="8.6")
    turing = GpuInfo(name="NVIDIA GeForce RTX 2080", compute_capability="7.5")
    foreign = check_engine(engine, environment=_env("tensorrt-rtx", "1.7.1.116", turing))
    assert foreign.status == "foreign" and foreign.reason.startswith(
        "it was built ahead of time for sm 8.6, 8.9"
    )
    assert foreign.rebuild is not None and foreign.rebuild.endswith("--compute-capability 7.5,8.6,8.9")
    assert check_engine(engine, environment=_env("tensorrt-rtx", "1.7.1.116", ampere)).valid
    # no rebuild helps on a GPU TensorRT-RTX cannot target at all
    hopper = check_engine(engine, environment=_env("tensorrt-rtx", "1.7.1.116", H200))
    assert hopper.status == "foreign" and hopper.rebuild is None
    assert hopper.refusal().endswith(
        "cannot target (it builds for 7.5, 8.0, 8.6, 8.9, 12.0, 12.1); use the tensorrt backend on this GPU"
    )
    default = _install(tmp_path / "d", dataclasses.replace(rtx, target_compute_capabilities=()))
    assert check_engine(default, environment=_env("tensorrt-rtx", "1.7.1.116", RTX4090)).valid
    assert check_engine(default, environment=_env("tensorrt-rtx", "1.7.1.116", turing)).status == "foreign"


def test_find_engine_picks_the_newest_valid_one_or_says_what_to_build(tmp_path: Path) -> None:
    find = dict(builder="tensorrt", model_source="model.pth", model_sha256="a" * 64, precision="fp16")
    with pytest.raises(EngineError) as info:
        find_engine(tmp_path / "none", environment=_env(), **find)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"no tensorrt engine for model.pth (fp16) in {tmp_path / 'none'}; build one: vsr build-engine "
        f"model.pth --precision fp16 --profile 1080p --target tensorrt --out {tmp_path / 'none'}"
    )
    old = _install(tmp_path, _manifest(engine_file="old.engine", built_at="2026-01-01T00:00:00+00:00"))
    new = _install(tmp_path, _manifest(engine_file="new.engine", built_at="2026-02-01T00:00:00+00:00"))
    _install(
        tmp_path, _manifest(engine_file="fp32.engine", precision="fp32", built_at="2026-03-01T00:00:00+00:00")
    )
    _install(
        tmp_path,
        _manifest(engine_file="other.engine", model_sha256="d" * 64, built_at="2026-03-01T00:00:00+00:00"),
    )
    assert find_engine(tmp_path, environment=_env(), **find).engine == new  # type: ignore[arg-type]
    new.write_bytes(b"corrupt")
    assert find_engine(tmp_path, environment=_env(), **find).engine == old  # type: ignore[arg-type]
    # nothing valid: the newest refused engine is named, with why and the rebuild command
    with pytest.raises(EngineError) as refused:
        find_engine(tmp_path, environment=_env(version="11.4.0.106"), **find)  # type: ignore[arg-type]
    assert str(refused.value).startswith(f"engine {new} is broken: the file is not the engine its manifest")
    new.unlink()
    manifest_path(new).unlink()
    with pytest.raises(EngineError) as stale:
        find_engine(tmp_path, environment=_env(version="11.4.0.106"), **find)  # type: ignore[arg-type]
    assert str(stale.value).startswith(f"engine {old} is stale: it was built by TensorRT 10.13.0.35 and")
    assert "; rebuild it: vsr build-engine weights/model.pth --precision fp16" in str(stale.value)


def test_listing_covers_engines_and_orphaned_manifests(tmp_path: Path) -> None:
    _install(tmp_path, _manifest(engine_file="a.engine"))
    (_install(tmp_path, _manifest(engine_file="b.engine"))).unlink()
    (tmp_path / "c.engine").write_bytes(b"no manifest")
    (tmp_path / "notes.json").write_text("{}")  # not a manifest: not listed
    (tmp_path / "d.engine.partial.x1y2").write_bytes(b"half")  # an interrupted build: not listed
    checks = list_engines(tmp_path)
    assert [c.engine.name for c in checks] == ["a.engine", "b.engine", "c.engine"]
    assert [c.status for c in checks][1:] == ["broken", "broken"]
    assert checks[0].status in (
        "unchecked",
        "valid",
        "stale",
        "foreign",
    )  # depends on this machine's TensorRT


def test_public_api_is_complete() -> None:
    import types

    import vsr.engines

    public = {
        n
        for n, v in vars(vsr.engines).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public == set(vsr.engines.__all__)
    for module in ("manifest", "profiles", "targets", "trt_build", "validate", "parity"):
        mod = getattr(vsr.engines, module, None) or __import__(f"vsr.engines.{module}", fromlist=["x"])
        assert all(hasattr(mod, n) for n in mod.__all__), module
