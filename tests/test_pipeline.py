"""The whole pipeline, file to file: frames, timestamps, audio bytes, colour, failures."""

from __future__ import annotations

import math
import os
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import vsr
from vsr.errors import Cancelled, ModelError, VsrError
from vsr.pipeline.runner import Pipeline, Progress

from clips import (
    av_clip,
    full_range_clip,
    hdr_tagged_clip,
    odd_size_clip,
    offset_clip,
    rotated_clip,
    ten_bit_clip,
    vfr_clip,
)

FAST = dict(preset="ultrafast", precision="fp32")


def _video(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        ctx = stream.codec_context
        return {
            "times": [Fraction(f.pts) * f.time_base for f in frames],
            "count": len(frames),
            "size": (frames[0].width, frames[0].height),
            "pix_fmt": frames[0].format.name,
            "color": (ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc),
            "rotation": frames[0].rotation,
            "frames": frames,
        }


def _packets(path: Path, kind: str) -> list[list[bytes]]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        out: list[list[bytes]] = [[] for _ in streams]
        for packet in c.demux(streams):
            if packet.size:
                out[streams.index(packet.stream)].append(bytes(packet))
        return out


def _psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def test_bicubic_x2_keeps_every_frame_pts_and_audio_and_matches_an_independent_resize(
    shared_data: Path, tmp_path: Path
) -> None:
    src = shared_data / "video" / "sample_1080x720_aac.mp4"
    out = tmp_path / "x2.mp4"
    summary = vsr.upscale(src, out, model="bicubic", scale=2, crf=0, **FAST)
    a, b = _video(src), _video(out)
    assert summary.frames_out == b["count"] == a["count"] == 30
    assert b["times"] == a["times"]
    assert b["size"] == (2160, 1440)
    assert _packets(out, "audio") == _packets(src, "audio") and len(_packets(src, "audio")[0]) == 45
    # untagged 720p input is converted as BT.709 limited, and the output says so
    assert b["color"][:2] == (1, 1)
    # Luma goes YUV->RGB->resize->RGB->YUV: all linear, so it must equal an independent bicubic
    # resize of the input's Y plane (Pillow, float) away from the borders, up to rounding.
    for fa, fb in zip(a["frames"][::10], b["frames"][::10], strict=True):  # type: ignore[index]
        y_in = fa.to_ndarray()[:720].astype(np.float32)
        ref = np.asarray(Image.fromarray(y_in, mode="F").resize((2160, 1440), Image.Resampling.BICUBIC))
        y_out = fb.to_ndarray()[:1440]
        assert _psnr(y_out[8:-8, 8:-8], ref[8:-8, 8:-8]) > 45.0


@pytest.mark.parametrize("make", [vfr_clip, offset_clip])
def test_variable_frame_rate_and_start_offsets_survive(make: object, tmp_path: Path) -> None:
    src = make(tmp_path)  # type: ignore[operator]
    out = tmp_path / "out.mp4"
    vsr.upscale(src, out, model="lanczos", scale=2, **FAST)
    a, b = _video(src), _video(out)
    assert b["count"] == a["count"]
    assert b["times"] == a["times"]
    assert len(set(np.diff([float(t) for t in a["times"]]).round(4))) > 1 or a["times"][0] > 0


@pytest.mark.parametrize("codec", ["libx265", "libx264"])
def test_ten_bit_input_gives_ten_bit_output(codec: str, tmp_path: Path) -> None:
    src = ten_bit_clip(tmp_path)
    out = tmp_path / f"out_{codec}.mkv"
    summary = vsr.upscale(src, out, model="bicubic", scale=2, codec=codec, **FAST)
    b = _video(out)
    assert summary.pix_fmt == b["pix_fmt"] == "yuv420p10le"
    assert b["color"] == (1, 1, 1, 1)


def test_hdr_colour_tags_and_rotation_are_kept(tmp_path: Path) -> None:
    hdr = _video_after(hdr_tagged_clip(tmp_path), tmp_path / "hdr_out.mp4", codec="libx265")
    assert hdr["color"] == (9, 1, 9, 16) and hdr["pix_fmt"] == "yuv420p10le"
    rotated = _video_after(rotated_clip(tmp_path), tmp_path / "rot_out.mp4")
    assert rotated["rotation"] == _video(rotated_clip(tmp_path))["rotation"] != 0


def _video_after(src: Path, out: Path, **options: object) -> dict[str, object]:
    vsr.upscale(src, out, model="lanczos", scale=2, **(FAST | options))
    return _video(out)


def test_full_range_input_stays_full_range_with_the_same_levels(tmp_path: Path) -> None:
    src = full_range_clip(tmp_path)
    b = _video_after(src, tmp_path / "out.mp4", crf=0)
    assert b["color"][:2] == (6, 2)
    a = _video(src)
    y_in = a["frames"][3].to_ndarray()[:96].astype(np.float32)  # type: ignore[index]
    y_out = b["frames"][3].to_ndarray()[:192].astype(np.float32)  # type: ignore[index]
    # a range mix-up would compress or stretch levels by 219/255: the means would differ by ~10
    assert abs(float(y_in.mean()) - float(y_out.mean())) < 1.0


def test_odd_size_input(tmp_path: Path) -> None:
    b = _video_after(odd_size_clip(tmp_path), tmp_path / "out.mp4")
    assert b["size"] == (1706, 962) and b["count"] == 6 and b["pix_fmt"] == "yuv444p"


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_audio_and_subtitle_packets_are_copied_byte_for_byte(ext: str, tmp_path: Path) -> None:
    src = av_clip(tmp_path, ext)
    out = tmp_path / f"out{ext}"
    summary = vsr.upscale(src, out, model="lanczos", scale=2, **FAST)
    assert _packets(out, "audio") == _packets(src, "audio")
    # the MP4 muxer writes empty mov_text samples ("\0\0") to fill gaps between cues, also after
    # the last one: the cues themselves must be identical
    cues = [[p for p in s if p != b"\x00\x00"] for s in _packets(src, "subtitle")]
    assert [[p for p in s if p != b"\x00\x00"] for s in _packets(out, "subtitle")] == cues
    assert sum(len(s) for s in cues) >= 2
    assert summary.passthrough_packets >= sum(len(p) for p in _packets(src, "audio"))
    assert _video(out)["times"] == _video(src)["times"]


class _FailingBackend:
    """Wraps a backend and raises on the n-th call, as a device error mid-run would."""

    def __init__(self, inner: object, fail_on: int) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0
        self.name, self.device, self.precision = "failing", torch.device("cpu"), "fp32"

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_on:
            raise ModelError("simulated failure in the model")
        return self.inner.run(batch)  # type: ignore[attr-defined]


def test_a_failure_mid_run_stops_every_stage_and_keeps_what_was_encoded(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vsr.pipeline.plan as runner  # the plan makes the run's backend

    real = runner.create_backend
    monkeypatch.setattr(runner, "create_backend", lambda *a, **k: _FailingBackend(real(*a, **k), fail_on=20))
    out = tmp_path / "out.mp4"
    pipeline = Pipeline(
        shared_data / "video" / "vtest.avi", out, vsr.UpscaleOptions(model="bicubic", scale=2, **FAST)
    )
    with pytest.raises(
        ModelError, match=r"simulated failure in the model; the \d+ frames encoded so far are kept in"
    ):
        _run_with_deadline(pipeline, seconds=60)
    assert not out.exists()
    partial = out.with_name("out.partial.mp4")
    kept = _video(partial)
    assert 0 < kept["count"] <= 19
    assert kept["times"] == [Fraction(i, 10) for i in range(kept["count"])]  # type: ignore[arg-type]
    assert threading.active_count() == 1 or not any(t.name.startswith("vsr-") for t in threading.enumerate())


def _run_with_deadline(pipeline: Pipeline, seconds: float) -> vsr.RunSummary:
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["summary"] = pipeline.run()
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the pipeline hung"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["summary"]  # type: ignore[return-value]


def test_cancel_finalises_a_playable_partial_file(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    holder: list[Pipeline] = []

    def on_progress(p: Progress) -> None:
        if p.frames_done >= 12:
            holder[0].cancel()

    pipeline = Pipeline(
        shared_data / "video" / "vtest.avi",
        out,
        vsr.UpscaleOptions(model="bicubic", scale=2, **FAST),
        on_progress=on_progress,
    )
    holder.append(pipeline)
    with pytest.raises(Cancelled, match=r"interrupted after \d+ frames"):
        _run_with_deadline(pipeline, seconds=60)
    assert not out.exists()
    kept = _video(out.with_name("out.partial.mkv"))
    assert kept["count"] >= 12
    assert kept["times"] == [Fraction(i, 10) for i in range(kept["count"])]  # type: ignore[arg-type]


def test_an_unknown_model_fails_before_any_output_exists(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(VsrError, match="unknown model 'nope'"):
        vsr.upscale(shared_data / "video" / "vfr_slow_motion.mp4", out, model="nope")
    assert list(tmp_path.iterdir()) == []


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/statm").exists(), reason="needs Linux /proc to read the memory in use"
)
def test_memory_stays_flat_over_a_long_clip(shared_data: Path, tmp_path: Path) -> None:
    samples: dict[int, float] = {}

    def on_progress(p: Progress) -> None:
        if 260 <= p.frames_done <= 300 or 750 <= p.frames_done <= 790:
            samples[p.frames_done] = _rss_mb()

    pipeline = Pipeline(
        shared_data / "video" / "vtest.avi",
        tmp_path / "out.mp4",
        vsr.UpscaleOptions(model="bicubic", scale=2, **FAST),
        on_progress=on_progress,
    )
    assert pipeline.run().frames_out == 795
    # allocators and the encoder's lookahead settle during the first few hundred frames (measured:
    # +63 MB from frame 100 to 400, +0.2 MB from 400 to 790); after that, 490 more frames of
    # 1536x1152 would be ~1.3 GB if anything kept them, while the queues only ever hold a few.
    # The least in use over 40 frames at each end: one sample can catch a few frames in flight
    # (single samples at 300 and 790 moved by -8 to +17 MB between runs on a loaded machine)
    early = min(v for k, v in samples.items() if k <= 300)
    late = min(v for k, v in samples.items() if k >= 750)
    assert len(samples) > 40 and late - early < 32, (early, late)
