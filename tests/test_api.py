"""The public API: `vsr.__all__` is complete and importable; options validate."""

from __future__ import annotations

from pathlib import Path

import pytest

import vsr
from vsr import errors
from vsr.errors import ConfigError
from vsr.pipeline.options import load_options, parse_size


def test_all_is_complete_and_every_name_resolves() -> None:
    assert set(errors.__all__) <= set(vsr.__all__)
    assert {
        "upscale",
        "upscale_images",
        "ImageRunSummary",
        "Pipeline",
        "UpscaleOptions",
        "RunSummary",
        "Progress",
        "__version__",
    } <= set(vsr.__all__)
    assert len(vsr.__all__) == len(set(vsr.__all__))
    for name in vsr.__all__:
        assert getattr(vsr, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vsr.nope  # noqa: B018


def test_options_merge_config_then_overrides(tmp_path) -> None:  # type: ignore[no-untyped-def]
    preset = tmp_path / "p.toml"
    preset.write_text('[upscale]\ncodec = "libx265"\ncrf = 16\nsize = "1280x-1"\n')
    options = load_options(str(preset), crf=20, preset=None)
    assert (options.codec, options.crf, options.size) == ("libx265", 20, (1280, -1))
    preset.write_text("[upscale]\ncodecs = 1\n")
    with pytest.raises(ConfigError, match="unknown option\\(s\\) codecs"):
        load_options(str(preset))
    with pytest.raises(ConfigError, match="config file not found"):
        load_options(str(tmp_path / "missing.toml"))


def test_sizes_parse_or_fail_with_the_expected_form() -> None:
    assert parse_size("3840x2160") == (3840, 2160) and parse_size("1280x-1") == (1280, -1)
    for bad in ("big", "0x100", "-1x-1", "12"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_every_option_has_a_kind_and_a_wrong_one_is_named() -> None:
    import dataclasses

    from vsr.pipeline.options import _KINDS

    assert {f.name for f in dataclasses.fields(vsr.UpscaleOptions)} == set(_KINDS)
    for values, message in [
        (
            {"overwrite": "no"},
            "--overwrite must be true or false, got 'no'",
        ),  # a true string: it replaced files
        ({"scale": 2.5}, "--scale must be a whole number, got 2.5"),
        ({"scale": "2"}, "--scale must be a whole number, got '2'"),
        ({"crf": "x"}, "--crf must be a whole number, got 'x'"),
        ({"model": 5}, "--model must be a name or a path, got 5"),
        ({"device": Path("cpu")}, "--device must be text, got PosixPath('cpu')"),
        ({"batch": True}, "--batch must be a whole number, got True"),
        ({"encoder_instances": 1.0}, "--encoders must be a whole number, got 1.0"),
        ({"size": (1280, "720")}, "--size must be a size WIDTHxHEIGHT, got (1280, '720')"),
    ]:
        with pytest.raises(ConfigError) as caught:
            vsr.UpscaleOptions(**values)  # type: ignore[arg-type]
        assert str(caught.value) == message


def test_a_presets_wrong_type_names_the_file_and_the_command_line_wins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    preset = tmp_path / "p.toml"
    preset.write_text('[upscale]\noverwrite = "no"\n')
    with pytest.raises(ConfigError) as caught:
        load_options(str(preset))
    assert str(caught.value) == f"config {preset}: overwrite must be true or false, got 'no'"
    preset.write_text('[upscale]\nsize = "1280x720"\ncrf = 16\n')
    options = load_options(str(preset), scale=3)  # --scale replaces the preset's size
    assert (options.scale, options.size, options.crf) == (3, None, 16)
    preset.write_text("[upscale]\nscale = 4\n")
    options = load_options(str(preset), size="640x-1")
    assert (options.scale, options.size) == (None, (640, -1))
    with pytest.raises(ConfigError, match="either --scale or --size"):
        load_options(None, scale=2, size="640x-1")


def test_the_api_refuses_options_of_the_wrong_type_with_its_own_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"^options must be an UpscaleOptions .* got dict$"):
        vsr.upscale(tmp_path / "in.mp4", tmp_path / "out.mp4", {"scale": 2})  # type: ignore[arg-type]


def test_counts_agree_with_their_nouns() -> None:
    from vsr.text import counted

    assert [counted(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert counted(1, "feed") == "1 feed" and counted(3, "child", "children") == "3 children"


def test_latency_of_no_frames_is_not_zero_milliseconds() -> None:
    from vsr.pipeline.stats import LatencyStats

    assert LatencyStats().describe() == "latency to the encoder: no frames"
    seen = LatencyStats(frames=3, mean_ms=40.0, p50_ms=38.2, p95_ms=61.0, max_ms=70.4)
    assert seen.describe() == "latency to the encoder p50 38 ms, p95 61 ms, max 70 ms"
