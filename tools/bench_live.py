"""End-to-end latency of a live run: wall-clock stamps written into the source, read from the output.

    python tools/bench_live.py [--model fast-x2|PATH|bicubic] [--fps 25] [--size 640x360] [--seconds 20]

``tools/rtsp_server.py --stamp WxH`` (run with Debian's /usr/bin/python3) generates frames that
carry the wall-clock time they were made, as 48 black/white blocks in the top rows, and encodes
them with x264 (zerolatency). This script runs `vsr upscale` in live mode on that stream, reads
the stamp back from every *enhanced* frame as it reaches the encoder and reports, per frame,
``now - stamp``: the server's encoder and packetiser, RTSP over loopback, demux and decode, the
queue, the Restore stage and the hand-over to the encoder. It also prints the pipeline's own
latency (arrival at the Source to encoder) and its drop counts; ``dropped_after_warmup`` counts
the frames missing between consecutive stamps after the first ``--skip`` seconds (the steady
state, without the first frames' torch.compile build and oneDNN warm-up).

``--model fast-x2`` uses the shipped weights when they are installed, else the same architecture
(SRVGGNetCompact, 16 features, 8 convs, PReLU, x2) with untrained weights, which costs the same.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import vsr  # noqa: E402
import vsr.media.outputs as outputs  # noqa: E402
import vsr.pipeline.runner as runner  # noqa: E402
from vsr.media import FileSink, Frame  # noqa: E402
from vsr.models.builtin import builtin_weights  # noqa: E402

from rtsp_server import RtspServer, rtsp_unavailable  # noqa: E402

STAMP_BITS, STAMP_BLOCK = 48, 16  # as tools/rtsp_server.py writes them
_WRAP_US = 1 << STAMP_BITS


def read_stamp(y: np.ndarray, scale: int, width: int) -> int:
    """The 48-bit microsecond stamp from the Y plane of a frame upscaled ``scale`` times."""
    block = STAMP_BLOCK * scale
    per_row = width // STAMP_BLOCK
    value = 0
    for bit in range(STAMP_BITS):
        by, bx = divmod(bit, per_row)
        cy, cx = by * block + block // 2, bx * block + block // 2
        patch = y[cy - block // 4 : cy + block // 4, cx - block // 4 : cx + block // 4]
        value = (value << 1) | int(float(np.median(patch)) > 126)
    return value


class StampReader(FileSink):
    """A FileSink that reads each frame's stamp just before encoding it (benchmark only)."""

    samples: ClassVar[list[float]] = []
    stamps: ClassVar[list[int]] = []  # microseconds, as made by the server
    scale: ClassVar[int] = 2
    source_width: ClassVar[int] = 640

    def write_frame(self, frame: Frame) -> None:
        now_us = int(time.time() * 1e6)
        stamp = read_stamp(frame.planes[0], self.scale, self.source_width)
        StampReader.samples.append(((now_us - stamp) % _WRAP_US) / 1e3)
        StampReader.stamps.append(stamp)
        super().write_frame(frame)


def _fast_x2_stand_in(folder: Path) -> str:
    import torch
    from safetensors.torch import save_file

    from vsr.models.compact import SRVGGNetCompact

    torch.manual_seed(0)
    model = SRVGGNetCompact(num_feat=16, num_conv=8, scale=2, act_type="prelu")
    path = folder / "fast-x2-architecture.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)  # noqa: E731
    return {"frames": len(values), "p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": round(ordered[-1], 1)}


def missing_frames(stamps: list[int], fps: float) -> int:
    """Frames the server made between consecutive enhanced frames that never reached the encoder."""
    period_us = 1e6 / fps
    return sum(max(0, round(((b - a) % _WRAP_US) / period_us) - 1) for a, b in itertools.pairwise(stamps))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fast-x2")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-latency", type=float, default=1.0)
    parser.add_argument("--skip", type=float, default=3.0, help="seconds of warm-up left out")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="as vsr upscale's; default: its auto",
    )
    args = parser.parse_args()
    reason = rtsp_unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    width = int(args.size.split("x")[0])
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model == "fast-x2" and "fast-x2" not in builtin_weights():
            model = _fast_x2_stand_in(Path(tmp))
        options = vsr.UpscaleOptions(
            model=model,
            scale=2,
            preset="ultrafast",
            max_latency=args.max_latency,
            reconnect_attempts=0,
            compile=args.compile,
        )
        StampReader.source_width = width
        outputs.FileSink = StampReader  # type: ignore[misc]  # what open_sink makes for out.mkv
        server = RtspServer(stamp=args.size, fps=args.fps)
        try:
            pipeline = runner.Pipeline(server.url, Path(tmp) / "out.mkv", options)
            timer = threading.Timer(args.seconds, pipeline.cancel)
            timer.start()
            summary = pipeline.run()
            timer.cancel()
        finally:
            server.stop()
    if not StampReader.samples:
        print("no stamp was read: the output did not go through StampReader", file=sys.stderr)
        return 1
    skip = int(args.skip * summary.fps) if summary.fps else 0
    skip_frames = int(args.skip * args.fps)  # in source frames: stamps are made at the input rate
    first = next(
        (
            i
            for i, t in enumerate(StampReader.stamps)
            if (t - StampReader.stamps[0]) / 1e6 * args.fps >= skip_frames
        ),
        len(StampReader.stamps),
    )
    live = summary.live
    assert live is not None
    result = {
        "model": summary.model,
        "input": f"{args.size} @ {args.fps} fps",
        "seconds": round(summary.wall_s, 1),
        "frames_in": summary.frames_in,
        "frames_out": summary.frames_out,
        "dropped": live.frames_dropped,
        "dropped_queue_full": live.dropped_queue_full,
        "dropped_late": live.dropped_late,
        "dropped_after_warmup": missing_frames(StampReader.stamps[first:], args.fps),
        "compiled": any(n.startswith("torch.compile:") for n in summary.notes),
        "restore_fps_alone": next(s.fps for s in summary.stages if s.name == "restore"),
        "end_to_end": _percentiles(StampReader.samples[skip:]),
        "pipeline": {k: v for k, v in vars(live.latency).items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
