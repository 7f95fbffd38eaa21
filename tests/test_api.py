"""The public API: `vsr.__all__` is complete and importable; options validate."""

from __future__ import annotations

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
