"""`RtspSink`: publish the upscaled video (and copied audio) to an RTSP server (ANNOUNCE/RECORD).

FFmpeg's RTSP muxer connects when the header is written: TCP connect, ANNOUNCE with the SDP,
SETUP per stream (interleaved on the RTSP connection: ``rtsp_transport=tcp``, so nothing is lost
to UDP and no ports need opening), RECORD. A refused publish (nothing listening, a mount that
does not exist or takes no publish, a refused codec) is therefore an `OutputError` from the
constructor, before any frame is decoded, and so is a server that takes the connection but never
answers (a frozen process): every socket operation has the open timeout.

The video is H.264 from libx264 with live settings: ``tune=zerolatency`` (no B-frames, no
lookahead: a frame leaves the encoder as soon as it is encoded, and pts == dts) and a keyframe
every 2 s, so a viewer that joins (or a server that records) can start within 2 s. Timestamps are
the frames' own, which the pipeline keeps strictly increasing (live inputs are rebased onto one
timeline across reconnects), on RTP's 90 kHz clock.

Publishing does not reconnect: when the server drops the publish, the run ends with an
`OutputError` saying so (exit code 1). A new publish is a new session, which servers treat as a
new stream (recorders start a new file); a supervisor (systemd ``Restart=``, a container
restart policy) restarting ``vsr upscale`` does the same thing with less machinery. Input
reconnects (a camera that drops out) are handled, and do not interrupt the publish.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction

import av
import av.stream

from vsr.errors import ConfigError, OutputError
from vsr.media.containers import RTSP_OUTPUT, incompatible_streams
from vsr.media.ffmpeg_errors import ffmpeg_reason
from vsr.media.live_input import redact
from vsr.media.output_spec import VideoOutputSpec
from vsr.media.sink_base import MuxedSink, start_muxer

__all__ = ["RtspSink", "check_publish_spec", "is_publish_url", "live_encoder_options", "publish_spec"]


_URL = re.compile(r"^rtsps?://[^/\s]+(/\S*)?$", re.IGNORECASE)
_KEYFRAME_S = 2
_FALLBACK_RATE = Fraction(25)
# x264's default (medium) is an offline choice; a publish must keep up with its input
_LIVE_PRESET = "veryfast"
# FFmpeg waits the whole timeout (polling in 0.1 s steps) before it gives up on a reply
_TIMED_OUT_SHARE = 0.9


def is_publish_url(text: str) -> bool:
    """Whether an output names an RTSP server to publish to (``rtsp://host:port/path``)."""
    return text.lower().startswith(("rtsp://", "rtsps://"))


def check_publish_spec(spec: VideoOutputSpec) -> None:
    if spec.codec != "libx264":
        raise ConfigError(f"RTSP output is H.264 from libx264; --codec {spec.codec} cannot be published")


def live_encoder_options(spec: VideoOutputSpec) -> dict[str, str]:
    """libx264 options for a publish: no B-frames or lookahead, a keyframe every 2 s."""
    check_publish_spec(spec)
    rate = spec.frame_rate or _FALLBACK_RATE
    return {"tune": "zerolatency", "g": str(max(1, round(rate * _KEYFRAME_S)))}


def publish_spec(spec: VideoOutputSpec) -> VideoOutputSpec:
    """``spec`` as a publish encodes it: the live preset unless one is given, the live options
    (the user's own, none today, override them). Applying it twice changes nothing."""
    return replace(
        spec,
        preset=spec.preset or _LIVE_PRESET,
        options={**live_encoder_options(spec), **spec.options},
    )


class RtspSink(MuxedSink):
    """Publishes to ``url`` for as long as frames come; the same calls as `FileSink`."""

    def __init__(
        self,
        url: str,
        spec: VideoOutputSpec,
        passthrough: Sequence[av.stream.Stream] = (),
        *,
        open_timeout_s: float = 10.0,
    ) -> None:
        if not _URL.match(url):
            raise ConfigError(f"not an RTSP URL to publish to: {redact(url)}")
        self.url = url
        self.name = redact(url)
        self.spec = spec = publish_spec(spec)
        problems = incompatible_streams(RTSP_OUTPUT, passthrough)
        if problems:
            raise ConfigError(f"RTSP cannot carry {'; '.join(problems)}")
        self._closed = False
        options = {
            "rtsp_transport": "tcp",
            # the muxer's socket I/O timeout (microseconds): a server that accepts the connection
            # but never answers the ANNOUNCE, or stops reading, fails instead of hanging
            "timeout": str(round(open_timeout_s * 1_000_000)),
        }
        try:
            container = av.open(url, "w", format="rtsp", container_options=options)
        except av.FFmpegError as error:
            raise OutputError(f"cannot publish to {self.name}: {ffmpeg_reason(error)}") from None
        note = (
            f"published as H.264 (libx264 preset {spec.preset}, tune zerolatency, a keyframe every "
            f"{_KEYFRAME_S} s); a dropped publish is not reconnected"
        )
        self._muxer = start_muxer(
            container, self.name, RTSP_OUTPUT, spec, passthrough,
            on_write_error=self._write_failed,
            on_start_error=lambda error, waited_s: self._refused(error, waited_s, open_timeout_s),
            notes=[note],
        )  # fmt: skip

    @property
    def label(self) -> str:
        return self.name

    def close(self) -> str:
        """Send what the encoder still holds and end the publish (TEARDOWN); return the URL."""
        self._check_open()
        self._closed = True
        self._muxer.finish()
        if self._muxer.frames_written == 0:
            raise OutputError(f"no video frame was written; nothing was published to {self.name}")
        return self.name

    def abort(self) -> None:
        """After a failure or interrupt: end the publish; nothing is kept on this side."""
        if not self._closed:
            self._closed = True
            self._muxer.finish_after_failure()

    def _refused(self, error: BaseException, waited_s: float, timeout_s: float) -> OutputError:
        # A reply that never comes is not reported as a timeout: FFmpeg's RTSP client logs
        # "Connection timed out", then finds the reply's status code unset (0, not 200) and
        # returns "Invalid data found when processing input", the error of a malformed reply.
        # A malformed reply comes back at once, a missing one after the whole timeout: the wait
        # tells them apart. A TCP connect that times out (nothing answers the SYN) keeps its errno.
        silent = isinstance(error, av.InvalidDataError) and waited_s >= _TIMED_OUT_SHARE * timeout_s
        if silent or isinstance(error, TimeoutError):
            return OutputError(
                f"publishing to {self.name} timed out: the RTSP server did not answer within "
                f"{timeout_s:g} s (--open-timeout)"
            )
        return OutputError(f"the RTSP server refused the publish to {self.name}: {ffmpeg_reason(error)}")

    def _write_failed(self, error: BaseException, doing: str, frames: int) -> OutputError:
        return OutputError(
            f"the RTSP server dropped the publish to {self.name} after {frames} frames: {ffmpeg_reason(error)}"
        )
