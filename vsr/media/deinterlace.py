"""Deinterlacing with FFmpeg's ``bwdif`` filter, one progressive frame per input frame.

``mode=send_frame`` keeps the frame count and the timestamps of the input (``send_field`` would
double the rate and invent timestamps), so the output still has exactly the input's frames. bwdif
needs the next frame to finish the current one, so output lags input by one frame until `flush`.
"""

from __future__ import annotations

import logging
from collections import deque
from fractions import Fraction

import av
import av.filter

__all__ = ["Deinterlacer"]

log = logging.getLogger(__name__)


class Deinterlacer:
    """A ``buffer -> bwdif -> buffersink`` graph fed one decoded frame at a time.

    ``all_frames=False`` deinterlaces only frames flagged interlaced (``deint=interlaced``) and
    passes progressive ones through, which suits mixed broadcast content.
    """

    def __init__(self, first: av.VideoFrame, time_base: Fraction, *, all_frames: bool) -> None:
        self._graph = av.filter.Graph()
        source = self._graph.add_buffer(
            width=first.width, height=first.height, format=first.format, time_base=time_base
        )
        deint = "all" if all_frames else "interlaced"
        bwdif = self._graph.add("bwdif", f"mode=send_frame:parity=auto:deint={deint}")
        sink = self._graph.add("buffersink")
        source.link_to(bwdif)
        bwdif.link_to(sink)
        self._graph.configure()
        # bwdif doubles the time base even in send_frame mode; rather than trust a rescale, each
        # output takes the pts (and key flag) of the input frame it came from, in order.
        self._pending: deque[tuple[int, bool]] = deque()

    def push(self, frame: av.VideoFrame, pts: int) -> list[tuple[av.VideoFrame, int, bool]]:
        """Feed one frame (``pts`` already repaired); return the frames that came out."""
        self._pending.append((pts, frame.key_frame))
        frame.pts = pts
        self._graph.vpush(frame)
        return self._drain()

    def flush(self) -> list[tuple[av.VideoFrame, int, bool]]:
        self._graph.vpush(None)
        return self._drain()

    def _drain(self) -> list[tuple[av.VideoFrame, int, bool]]:
        out = []
        while True:
            try:
                frame = self._graph.vpull()
            except (BlockingIOError, EOFError):
                # PyAV raises its FFmpeg EAGAIN/EOF errors as these builtins' subclasses.
                return out
            if not self._pending:
                log.warning("bwdif returned more frames than it was given; dropping the extra one")
                continue
            pts, key = self._pending.popleft()
            out.append((frame, pts, key))
