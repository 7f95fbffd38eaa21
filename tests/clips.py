"""Small synthetic test clips written with PyAV, for the media tests and the pipeline's tests.

Every function writes one clip into ``folder`` and returns its path. Clips are a few dozen frames
of moving gradients over a fixed noise texture (real-looking enough for encoders to work on
motion and detail), at small sizes, so each takes milliseconds to write.

    >>> path = vfr_clip(tmp_path)            # irregular pts in 1/90000
    >>> path = av_clip(tmp_path, ".mkv")     # aac + subrip + ass + a font attachment
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsr.media.frame import pixel_layout
from vsr.media.planes import copy_planes_into

__all__ = [
    "ASS_HEADER",
    "SUBTITLE_TEXTS",
    "av_clip",
    "full_range_clip",
    "hdr_tagged_clip",
    "moving_planes",
    "odd_size_clip",
    "offset_clip",
    "rotated_clip",
    "ten_bit_clip",
    "vfr_clip",
    "write_clip",
]

_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
SUBTITLE_TEXTS = ("first line", "second line")
ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
    "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
    "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def moving_planes(
    pix_fmt: str, width: int, height: int, index: int, *, seed: int = 0
) -> tuple[np.ndarray, ...]:
    """Planes of frame ``index`` of a clip: a gradient that drifts right, over a noise texture.

    Values stay in limited range for every bit depth, so the same content suits full- and
    limited-range clips.
    """
    layout = pixel_layout(pix_fmt)
    rng = np.random.default_rng(seed)
    scale = 1 << (layout.bits - 8) if layout.family != "nv" else 1 << 8  # p010: high bits
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.normal(0, 12, size=(height, width)).astype(np.float32)
    luma = 60 + 120 * ((x + 4 * index) % width) / max(width, 1) + 0.2 * y + texture
    planes = [np.clip(luma, 16, 235)]
    if layout.family in ("yuv", "nv"):
        cw, ch = -(-width >> layout.chroma_w), -(-height >> layout.chroma_h)
        cy, cx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        u = 128 + 50 * np.sin((cx + 3 * index) / 9.0)
        v = 128 + 50 * np.cos((cy - 2 * index) / 7.0)
        planes += [np.clip(u, 16, 240), np.clip(v, 16, 240)]
        if layout.family == "nv":
            planes = [planes[0], np.stack(planes[1:], axis=-1)]
    dtype = layout.dtype
    return tuple((p * scale).astype(dtype) for p in planes)


def _audio_frames(stream: av.audio.stream.AudioStream, seconds: float) -> list[av.AudioFrame]:
    rate, size = stream.codec_context.sample_rate, 1024
    frames = []
    for n in range(int(seconds * rate / size) + 1):
        t = (np.arange(size) + n * size) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone * 0.5]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, n * size, Fraction(1, rate)
        frames.append(frame)
    return frames


def _subtitle_packet(codec: str, n: int, text: str, stream: av.stream.Stream) -> av.Packet:
    if codec == "mov_text":
        data = len(text.encode()).to_bytes(2, "big") + text.encode()  # 3GPP timed text sample
    elif codec == "ass":
        data = f"{n},0,Default,,0,0,0,,{text}".encode()  # Matroska's ASS block layout
    else:
        data = text.encode()
    packet = av.Packet(data)
    packet.stream, packet.time_base = stream, Fraction(1, 1000)
    packet.pts = packet.dts = 100 + 250 * n
    packet.duration = 200
    return packet


def write_clip(
    path: Path,
    *,
    width: int = 160,
    height: int = 96,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    time_base: Fraction = Fraction(1, 25),
    pts: Sequence[int] | None = None,
    frames: int = 12,
    rate: Fraction | None = None,
    color: tuple[int, int, int, int] | None = None,
    rotation: float = 0,
    audio: bool = False,
    subtitles: Sequence[str] = (),
    attachment: bool = False,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    video_tags: dict[str, str] | None = None,
    chapters: Sequence[tuple[int, int, str]] = (),
    cover: bool = False,
) -> Path:
    """Write a clip; ``color`` is (matrix, range, primaries, transfer) in FFmpeg's numbering.

    ``metadata``: the container's tags; ``video_tags``: the video stream's; ``chapters``: (start
    ms, end ms, title) each. ``cover``: a PNG attached picture (cover art) after the video."""
    pts = list(range(frames)) if pts is None else list(pts)
    output = av.open(str(path), "w", format=_FORMATS[path.suffix], container_options=container_options or {})
    opts = {"preset": "ultrafast", "bframes": "0"} if codec.startswith("libx26") else {}
    video = output.add_stream(codec, rate=rate or Fraction(25), options=opts | (options or {}))
    video.width, video.height, video.pix_fmt = width, height, pix_fmt.replace("yuvj", "yuv")
    video.codec_context.time_base = video.time_base = time_base
    if color is not None:
        ctx = video.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = color
    if rotation:
        video.set_display_rotation(rotation)
    for key, value in (metadata or {}).items():
        output.metadata[key] = value
    for key, value in (video_tags or {}).items():
        video.metadata[key] = value
    if chapters:
        output.set_chapters(
            [
                {
                    "id": n,
                    "start": start,
                    "end": end,
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": title},
                }
                for n, (start, end, title) in enumerate(chapters, start=1)
            ]
        )
    if cover:
        art = output.add_stream("png")
        art.width, art.height, art.pix_fmt = 32, 32, "rgb24"
        art.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
        for packet in [*art.encode(picture), *art.encode(None)]:
            output.mux(packet)
    sound = output.add_stream("aac", rate=48000) if audio else None
    subs = []
    for codec_name in subtitles:
        if codec_name == "ass":
            stream = output.add_stream("ass")
            stream.codec_context.subtitle_header = ASS_HEADER.encode()
            stream.codec_context.time_base = Fraction(1, 1000)
        else:
            stream = output.add_mux_stream(codec_name)
        subs.append((codec_name, stream))
    if attachment:
        output.add_attachment(
            "DejaVuSans.ttf", "application/x-truetype-font", b"\x00\x01\x00\x00not a real font"
        )

    layout = pixel_layout(pix_fmt)
    for index, value in enumerate(pts):
        frame = av.VideoFrame(width, height, video.pix_fmt)
        copy_planes_into(frame, layout, moving_planes(pix_fmt, width, height, index))
        frame.pts, frame.time_base = value, time_base
        output.mux(video.encode(frame))
    output.mux(video.encode(None))
    seconds = float((pts[-1] - pts[0] + 1) * time_base) if pts else 0.0
    if sound is not None:
        for audio_frame in _audio_frames(sound, seconds):
            output.mux(sound.encode(audio_frame))
        output.mux(sound.encode(None))
    for codec_name, stream in subs:
        for n, text in enumerate(SUBTITLE_TEXTS):
            output.mux(_subtitle_packet(codec_name, n, text, stream))
    output.close()
    return path


def vfr_clip(folder: Path, ext: str = ".mp4") -> Path:
    """20 frames with irregular intervals (1/90000): bursts of 30 fps and pauses up to 0.3 s."""
    steps = [3000, 3000, 27000, 3000, 6000, 3000, 3000, 12000, 3000, 3000] * 2
    pts = np.concatenate([[0], np.cumsum(steps[:19])]).tolist()
    return write_clip(folder / f"vfr{ext}", time_base=Fraction(1, 90000), pts=pts, rate=Fraction(30))


def ten_bit_clip(folder: Path, ext: str = ".mp4") -> Path:
    """yuv420p10le H.264 (High 10) tagged BT.709."""
    return write_clip(folder / f"ten_bit{ext}", pix_fmt="yuv420p10le", color=(1, 1, 1, 1))


def hdr_tagged_clip(folder: Path, ext: str = ".mp4") -> Path:
    """yuv420p10le tagged like HDR10: BT.2020 matrix and primaries, PQ transfer."""
    return write_clip(folder / f"hdr{ext}", pix_fmt="yuv420p10le", color=(9, 1, 9, 16))


def odd_size_clip(folder: Path, ext: str = ".mp4") -> Path:
    """853x481 yuv444p (4:4:4 so that libx264 takes odd dimensions), 6 frames."""
    return write_clip(folder / f"odd{ext}", width=853, height=481, pix_fmt="yuv444p", frames=6)


def full_range_clip(folder: Path, ext: str = ".mp4") -> Path:
    """Full-range ("yuvj420p") BT.601 clip, as phone cameras write them."""
    return write_clip(folder / f"full_range{ext}", pix_fmt="yuvj420p", color=(6, 2, 6, 6))


def rotated_clip(folder: Path, degrees: float = 90, ext: str = ".mp4") -> Path:
    """A clip with a display matrix (a phone held upright)."""
    return write_clip(folder / f"rotated{ext}", rotation=degrees)


def offset_clip(folder: Path, start_pts: int = 137250, ext: str = ".mp4") -> Path:
    """15 frames at 24 fps in 1/90000 whose pts start at ``start_pts`` (as broadcast captures do)."""
    pts = [start_pts + 3750 * i for i in range(15)]
    return write_clip(folder / f"offset{ext}", time_base=Fraction(1, 90000), pts=pts, rate=Fraction(24))


def av_clip(folder: Path, ext: str = ".mkv", *, frames: int = 25) -> Path:
    """Video + AAC audio + subtitles: subrip and ASS (+ a font attachment) in .mkv, mov_text in .mp4."""
    subtitles = ("subrip", "ass") if ext == ".mkv" else ("mov_text",)
    return write_clip(
        folder / f"av{ext}",
        frames=frames,
        audio=True,
        subtitles=subtitles,
        attachment=ext == ".mkv",
        time_base=Fraction(1, 1000) if ext == ".mkv" else Fraction(1, 25),
        pts=[40 * i for i in range(frames)] if ext == ".mkv" else None,
    )
