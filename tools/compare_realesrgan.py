"""vsr against Real-ESRGAN's own video inference on this machine: time, frames, timestamps, audio.

    python tools/compare_realesrgan.py --realesrgan-python /path/to/venv/bin/python \
        [--clip ../shared/data/video/vfr_slow_motion.mp4] [--frames N] [--checkpoint realesr-animevideov3.pth]
        [--vsr-args "--precision fp32"] [--out runs/compare] [--skip-realesrgan]

**The Real-ESRGAN side.** Real-ESRGAN's `inference_realesrgan_video.py` (xinntao/Real-ESRGAN)
cannot run on a machine without a CUDA GPU as published: with no GPU it computes 0 worker
processes and asks for a pool of 0 (and it calls ``torch.cuda.synchronize`` after each frame).
So this tool runs its inference loop, not its file: the ``realesrgan`` package from PyPI
(`RealESRGANer.enhance`, one BGR uint8 frame at a time, fp32 because the script's fp16 default
needs CUDA, no tiles, no pre-pad), between the two ffmpeg processes the script opens: one that
decodes the input to raw ``bgr24`` on a pipe, and one that reads raw frames at the input's
``avg_frame_rate`` and writes libx264 ``yuv420p``, copying the input's audio with ``-c:a copy``
when it has some. It runs under ``--realesrgan-python`` (an environment with ``realesrgan``,
``basicsr`` and an ffmpeg binary on PATH; basicsr 1.4.2 imports
``torchvision.transforms.functional_tensor``, which torchvision 0.17 removed: the usual workaround,
the module aliased to ``torchvision.transforms.functional``, is applied before the import).

**The vsr side.** ``python -m vsr upscale CLIP OUT -m CHECKPOINT`` with its defaults (bf16 on
this CPU) and whatever ``--vsr-args`` adds, under this interpreter.

Both get the same input: the clip itself, or its first ``--frames`` frames (stream-copied by
ffmpeg into a new file, so nothing is re-encoded). The wall time of each whole command is
measured, start to finished file. Then each output is checked against the input with PyAV:
frame count, each frame's presentation time (seconds) against the input frame's, and the audio
packets' bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIP = SHARED / "video" / "vfr_slow_motion.mp4"
CHECKPOINT = SHARED / "weights" / "realesr-animevideov3.pth"


# --- the Real-ESRGAN side: runs under --realesrgan-python ------------------------------------


def _realesrgan_worker(clip: str, checkpoint: str, out: str) -> None:
    import numpy as np
    import torch
    import torchvision.transforms.functional as tv_functional

    # basicsr 1.4.2 imports a module that torchvision 0.17 removed: the usual alias
    sys.modules.setdefault("torchvision.transforms.functional_tensor", tv_functional)
    from realesrgan import RealESRGANer
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact

    probe = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-of", "json", clip], check=True, capture_output=True
        ).stdout
    )
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    has_audio = any(s["codec_type"] == "audio" for s in probe["streams"])
    width, height = int(video["width"]), int(video["height"])
    fps = video["avg_frame_rate"]  # the script: eval(avg_frame_rate), the output's constant rate
    model = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu")
    upsampler = RealESRGANer(
        scale=4, model_path=checkpoint, model=model, tile=0, tile_pad=10, pre_pad=0, half=False,
        device=torch.device("cpu"),
    )  # fmt: skip
    reader = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-i", clip, "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:"],
        stdout=subprocess.PIPE,
    )
    audio = ["-i", clip, "-map", "0:v", "-map", "1:a", "-c:a", "copy"] if has_audio else []
    writer = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width * 4}x{height * 4}",
         "-framerate", fps, "-i", "pipe:", *audio, "-pix_fmt", "yuv420p", "-c:v", "libx264", out],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert reader.stdout is not None and writer.stdin is not None
    frames = 0
    while True:
        data = reader.stdout.read(width * height * 3)
        if len(data) < width * height * 3:
            break
        image = np.frombuffer(data, np.uint8).reshape(height, width, 3)
        output, _ = upsampler.enhance(image, outscale=4)
        writer.stdin.write(output.astype(np.uint8).tobytes())
        frames += 1
    reader.wait()
    writer.stdin.close()
    if writer.wait() != 0 or reader.returncode != 0:
        raise SystemExit(f"ffmpeg failed (reader {reader.returncode}, writer {writer.returncode})")
    print(json.dumps({"frames": frames, "torch": torch.__version__, "threads": torch.get_num_threads()}))


# --- checks, under this interpreter -----------------------------------------------------------


def _video_times(path: Path) -> list[Fraction]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [f.pts * stream.time_base for f in container.decode(stream) if f.pts is not None]
    return sorted(times)


def _video_end(path: Path) -> float:
    """Where the video ends, in seconds: the last frame's pts plus its packet's duration.

    (The last frame's own duration: an MP4's packet durations are the gaps between decoding
    times, which with B-frames pair packets with other frames' gaps.)
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size and p.pts is not None]
    if not packets:
        return 0.0
    last = max(packets, key=lambda p: p.pts)
    return float((last.pts + last.duration) * last.time_base)


def _audio_digest(path: Path) -> tuple[int, str]:
    import av

    digest = hashlib.sha256()
    count = 0
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0, ""
        for packet in container.demux(container.streams.audio[0]):
            if packet.size:
                digest.update(bytes(packet))
                count += 1
    return count, digest.hexdigest()[:16]


def _check(source: Path, output: Path) -> dict[str, object]:
    truth, got = _video_times(source), _video_times(output)
    start = truth[0] if truth else Fraction(0)
    shifted = [t - got[0] + start for t in got] if got else []  # a muxer may move the start; compare spacing
    worst = max((abs(float(a - b)) for a, b in zip(truth, shifted, strict=False)), default=0.0)
    audio_in, audio_out = _audio_digest(source), _audio_digest(output)
    return {
        "frames": f"{len(got)} of {len(truth)}",
        "ends_s": f"{_video_end(output):.3f} (input {_video_end(source):.3f})",
        "worst_time_error_ms": round(1000 * worst, 1) if len(got) == len(truth) else None,
        "audio": "none in the input"
        if audio_in[0] == 0
        else (
            "the same packets"
            if audio_in == audio_out
            else f"{audio_out[0]} packets, not the input's {audio_in[0]}"
        ),
    }


def _cut(clip: Path, frames: int, folder: Path) -> Path:
    cut = folder / f"{clip.stem}-{frames}f{clip.suffix}"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-map", "0", "-c", "copy", "-frames:v", str(frames), str(cut)],
        check=True,
    )  # fmt: skip
    return cut


def _timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--frames", type=int, default=0, help="only the clip's first N frames (0: all)")
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--realesrgan-python", default=None, help="a Python with realesrgan and basicsr")
    parser.add_argument("--skip-realesrgan", action="store_true")
    parser.add_argument("--vsr-args", default="", help="more options for vsr upscale, one string")
    parser.add_argument("--out", type=Path, default=Path("runs/compare-realesrgan"))
    parser.add_argument("--_worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        _realesrgan_worker(*args._worker)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    clip = _cut(args.clip, args.frames, args.out) if args.frames else args.clip
    count = len(_video_times(clip))
    print(f"input: {clip} ({count} frames), checkpoint {args.checkpoint.name}, x4, {os.cpu_count()} CPUs")
    rows = []
    if not args.skip_realesrgan:
        if not args.realesrgan_python:
            raise SystemExit(
                "give --realesrgan-python (an environment with realesrgan), or --skip-realesrgan"
            )
        out = args.out / f"{clip.stem}-realesrgan.mp4"
        seconds, stdout = _timed(
            [args.realesrgan_python, __file__, "--_worker", str(clip), str(args.checkpoint), str(out)]
        )
        info = json.loads(stdout.strip().splitlines()[-1])
        rows.append((f"Real-ESRGAN loop (torch {info['torch']}, fp32)", seconds, _check(clip, out)))
    out = args.out / f"{clip.stem}-vsr.mp4"
    extra = shlex.split(args.vsr_args)
    seconds, _ = _timed(
        [
            sys.executable,
            "-m",
            "vsr",
            "upscale",
            str(clip),
            str(out),
            "-m",
            str(args.checkpoint),
            "-y",
            "-q",
            *extra,
        ]
    )
    import torch

    rows.append(
        (
            f"vsr upscale {' '.join(extra) or '(defaults)'} (torch {torch.__version__})",
            seconds,
            _check(clip, out),
        )
    )
    print("| run | wall s | fps | frames | worst pts error | video ends at, s | audio |")
    print("|---|---:|---:|---|---:|---|---|")
    for name, seconds, check in rows:
        error = check["worst_time_error_ms"]
        print(
            f"| {name} | {seconds:.1f} | {count / seconds:.3f} | {check['frames']} | "
            f"{'n/a' if error is None else f'{error} ms'} | {check['ends_s']} | {check['audio']} |"
        )


if __name__ == "__main__":
    main()
