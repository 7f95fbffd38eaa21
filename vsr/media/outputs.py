"""Which sink an output names: a file, a segmented recording, an HLS playlist or an RTSP publish.

out.mp4 / .mkv / .mov / .ts     FileSink (SegmentSink with a segment duration)
out/index.m3u8                  HlsSink (the segment duration is the HLS segment length)
rtsp://host:port/path           RtspSink
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import av
import av.stream

from vsr.media.containers import RTSP_OUTPUT, OutputContainerKind, container_for
from vsr.media.frame import Frame
from vsr.media.hls import DEFAULT_SEGMENT_S, HlsSink
from vsr.media.output_spec import VideoOutputSpec
from vsr.media.publish import RtspSink, is_publish_url
from vsr.media.segments import SegmentSink
from vsr.media.sink import FileSink

__all__ = ["Sink", "open_sink", "output_kind"]


class Sink(Protocol):
    notes: list[str]
    frames_written: int

    def write_frame(self, frame: Frame) -> None: ...
    def write_packet(self, packet: av.Packet) -> None: ...
    def close(self) -> Path | str: ...
    def abort(self) -> Path | None: ...


def output_kind(output: str | Path) -> OutputContainerKind:
    """The container an output is written in (a `ConfigError` for one vsr does not write)."""
    return RTSP_OUTPUT if is_publish_url(str(output)) else container_for(Path(output))


def open_sink(
    output: str | Path,
    spec: VideoOutputSpec,
    passthrough: Sequence[av.stream.Stream] = (),
    *,
    segment_s: float | None = None,
    live: bool = False,
    open_timeout_s: float = 10.0,
) -> Sink:
    """The sink for ``output``. ``live``: the input is live (HLS keeps a sliding window)."""
    text = str(output)
    if is_publish_url(text):
        return RtspSink(text, spec, passthrough, open_timeout_s=open_timeout_s)
    kind = container_for(Path(text))
    if kind.playlist:
        return HlsSink(text, spec, passthrough, segment_s=segment_s or DEFAULT_SEGMENT_S, live=live)
    if segment_s is not None:
        return SegmentSink(text, spec, segment_s)
    return FileSink(text, spec, passthrough)
