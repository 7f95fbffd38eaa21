"""Live inputs (RTSP, RTMP, HTTP streams, V4L2 cameras): recognising them and opening one connection.

What FFmpeg does on this platform (FFmpeg 8.1 through PyAV 18, measured against gst-rtsp-server;
``tests/test_live.py`` checks each option below really takes effect, since FFmpeg silently
ignores options it does not know):

- Starting at the live edge comes from a short stream analysis at open, not from
  ``fflags=nobuffer``. Against a 25 fps RTSP stream (``docs/BENCHMARKS.md``): FFmpeg's default
  analysis took 1.1 s before the first frame, then caught up with the live edge (the analysed
  packets are replayed, nothing is lost); ``probesize=32`` opened in 0.06 s with every frame from
  the first; ``fflags=nobuffer`` throws the analysed packets away, which never lowered the
  latency once caught up and always lost data: the first keyframe and so the whole first GOP
  with ``probesize=32`` (1 s here, several seconds on cameras), 2 s with the default analysis.
  So live inputs get the short analysis and not ``nobuffer``: for RTSP ``probesize=32`` (the SDP
  describes the streams, and vsr decodes the first frame itself), elsewhere ``analyzeduration``
  of 0.1 s. Measured against FFmpeg's own RTMP server and an HTTP server sending MPEG-TS at its
  pace (25 fps 320x240 H.264 with B-frames, AAC at 48 kHz; ``tests/test_live_protocols.py``):
  RTMP opened in 1.9 s with the default analysis, 1.3 s with 1 s, 0.4 s with 0.1 s, and with
  every stream parameter right; ``probesize=32`` (0.3 s) took the AAC sample rate from the FLV
  tag header, which cannot say 48 kHz, and gave 44.1 kHz. The analysed packets are decoded in
  one burst once the input opens, more frames than the queue to the model holds: with 1 s of
  analysis live mode dropped 17 of the first 25 frames of an RTMP stream, though the model was
  many times faster than the input. The demuxers read their own headers (MPEG-TS tables, the
  moov of an MP4, FLV's codec headers) before the analysis starts.
- A read timeout (PyAV's ``timeout=(open, read)``, which works for every protocol) interrupts a
  stalled read, but the RTSP demuxer then hands over the frame it was holding and only the next
  read fails: a stall is detected after twice the timeout. Each RTSP read therefore gets half of
  the read timeout asked for, so that a stall is detected within it. The HTTP and RTMP demuxers
  fail at the first stalled read, so theirs get the whole read timeout (halved, an HTTP stall
  was detected after 0.5 s of a 1 s read timeout).
- When a server dies the demuxer simply ends, with no error (RTSP, HTTP), or fails with an I/O
  error (RTMP); a frozen server blocks until the read timeout. However a connection ends, the
  frames its decoder still holds (B-frames are reordered there) are flushed out, so an RTMP
  stream's last frames are not lost. Keyframe flags on RTSP packets are unreliable (the decoded
  frame's are used) and the first frame may have no pts.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import av
import av.container

from vsr.errors import ConfigError, InputError
from vsr.media.ffmpeg_errors import ffmpeg_reason

__all__ = ["LiveConnectOptions", "LiveConnection", "LiveKind", "live_kind", "open_live", "redact"]

log = logging.getLogger(__name__)

LiveKind = Literal["rtsp", "rtmp", "http", "camera"]
_SCHEMES: dict[str, LiveKind] = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "rtmp": "rtmp",
    "rtmps": "rtmp",
    "http": "http",
    "https": "http",
}
_CAMERA = re.compile(r"^/dev/video\d+$")
_MAX_DECODE_ERRORS = 50  # consecutive undecodable packets that count as a lost stream
_ANALYZE_US = 100_000  # stream analysis at open for inputs other than RTSP: 0.1 s


def live_kind(text: str) -> LiveKind | None:
    """What kind of live input ``text`` names, or None for a file path."""
    scheme, sep, _ = text.partition("://")
    if sep:
        return _SCHEMES.get(scheme.lower())
    return "camera" if _CAMERA.match(text) else None


def check_scheme(text: str) -> None:
    """A `ConfigError` for a URL whose scheme vsr does not read (``ftp://``): as a path it would be
    "not found" with its slashes folded."""
    scheme, sep, _ = text.partition("://")
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) and scheme.lower() not in _SCHEMES:
        readable = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ConfigError(f"{scheme}:// inputs are not read; vsr reads files, {readable} and /dev/videoN")


def redact(url: str) -> str:
    """The URL without a password, for messages and logs (cameras are often rtsp://user:pass@...)."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


@dataclass(frozen=True, kw_only=True)
class LiveConnectOptions:
    """How one connection is opened and read; the reconnect policy lives with the source."""

    transport: Literal["tcp", "udp"] = "tcp"  # RTSP only
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0  # a read stalled this long counts as a disconnect
    low_latency: bool = True  # a short stream analysis at open, so the first frame comes at once

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "udp"):
            raise ConfigError(f"--rtsp-transport must be tcp or udp, got {self.transport!r}")
        if self.open_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ConfigError("--open-timeout and --read-timeout must be positive seconds")

    def read_timeout_for(self, kind: LiveKind) -> float:
        """What one read may wait so that a stall is detected within ``read_timeout_s``."""
        return self.read_timeout_s / 2 if kind == "rtsp" else self.read_timeout_s

    def ffmpeg_options(self, kind: LiveKind) -> dict[str, str]:
        options: dict[str, str] = {}
        if kind == "rtsp":
            options["rtsp_transport"] = self.transport
        if self.low_latency:
            if kind == "rtsp":
                options["probesize"] = "32"
            else:
                options["analyzeduration"] = str(_ANALYZE_US)
        return options


def open_live(url: str, kind: LiveKind, options: LiveConnectOptions) -> av.container.InputContainer:
    """One connection, or an `InputError` that says why there is none (the caller may retry and
    names the URL)."""
    started = time.monotonic()
    try:
        return av.open(
            url,
            mode="r",
            format="v4l2" if kind == "camera" else None,
            options=options.ffmpeg_options(kind),
            timeout=(options.open_timeout_s, options.read_timeout_for(kind)),
            metadata_errors="replace",
        )
    except av.ExitError:
        raise InputError(f"no answer within {options.open_timeout_s:g} s (--open-timeout)") from None
    except av.FFmpegError as error:
        # a server that takes the connection and never answers ends in "Invalid data" when the
        # timeout cuts it short: the time, not FFmpeg's words, says what happened
        if time.monotonic() - started >= 0.9 * options.open_timeout_s:
            raise InputError(f"no answer within {options.open_timeout_s:g} s (--open-timeout)") from None
        raise InputError(ffmpeg_reason(error)) from None


class LiveConnection:
    """One open connection: its demuxer, its decoder, and why it ended.

    `frames` yields the decoded video frames and, interleaved as they arrive, the packets of the
    first audio stream (``audio``; None when there is none), undecoded, for copying.
    """

    def __init__(self, container: av.container.InputContainer, url: str, read_timeout_s: float) -> None:
        self.container = container
        videos = container.streams.video
        if not videos:
            raise InputError(f"{redact(url)} has no video stream")
        self.video = videos[0]
        if self.video.codec_context is None:
            raise InputError(f"this FFmpeg build cannot decode the video of {redact(url)}")
        # Frame threading delays every frame by one frame per thread; slices do not.
        self.video.thread_type = "SLICE"
        audios = container.streams.audio
        self.audio = audios[0] if audios else None
        self.others = len(container.streams) - 1 - (self.audio is not None)
        self._packets = container.demux(self.video, *([self.audio] if self.audio is not None else []))
        self._read_timeout_s = read_timeout_s
        self.pending: deque[av.VideoFrame] = deque()
        self.end_reason = "the stream ended"

    def first_frame(self, within_s: float) -> av.VideoFrame:
        """Decode up to the first frame (kept for `frames`), or raise `InputError` saying why not."""
        for item in self.frames(deadline=time.monotonic() + within_s):
            if isinstance(item, av.Packet):
                continue  # audio before the first frame: its place on the timeline is not known yet
            self.pending.appendleft(item)
            return item
        raise InputError(self.end_reason)

    def frames(self, deadline: float | None = None) -> Iterator[av.VideoFrame | av.Packet]:
        while self.pending:
            yield self.pending.popleft()
        errors = 0
        while True:
            if deadline is not None and time.monotonic() > deadline:
                # packets keep coming but none decodes (no keyframe yet, or not video at all)
                self.end_reason = "no decodable frame arrived in time"
                return
            try:
                packet = next(self._packets)
            except StopIteration:
                return  # after the demuxer's empty packets, which flushed the decoder
            except av.ExitError:
                self.end_reason = f"no data for {self._read_timeout_s:g} s (read timeout)"
                yield from self._flush()
                return
            except av.FFmpegError as error:
                self.end_reason = ffmpeg_reason(error)
                yield from self._flush()
                return
            if packet.stream_index != self.video.index:
                if packet.size:
                    yield packet
                continue
            try:
                frames = self.video.decode(packet)
            except av.FFmpegError as error:
                # packet loss (UDP) or a damaged packet: the decoder conceals it from the next one
                errors += 1
                if errors >= _MAX_DECODE_ERRORS:
                    self.end_reason = (
                        f"{errors} packets in a row could not be decoded ({ffmpeg_reason(error)})"
                    )
                    return
                continue
            errors = 0
            yield from frames

    def _flush(self) -> Iterator[av.VideoFrame]:
        """The frames the decoder still holds, when the demuxer ended on an error."""
        try:
            for frame in self.video.decode(None):
                frame.time_base = self.video.time_base  # a flushed frame has none of its own
                yield frame
        except av.FFmpegError as error:
            log.debug("flushing the decoder of a lost connection failed: %s", ffmpeg_reason(error))

    def close(self) -> None:
        try:
            self.container.close()
        except (av.FFmpegError, OSError) as error:
            log.debug("closing a live connection failed: %s", ffmpeg_reason(error))
