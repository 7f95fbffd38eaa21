"""`LiveSource`: frames of a live input (RTSP, RTMP, HTTP, V4L2 camera) that survive disconnects.

It offers what the pipeline uses of `FileSource` (``info``, ``passthrough``, ``items``,
``run_notes``, ``close``) and adds a reconnect policy and an event log. One connection is
opened and its first frame decoded when the source is created, because the run is planned from
that frame's size, pixel format and colour. After that, the end of a stream, a read that stalls
past the read timeout and a connection error are all the same event: a disconnect, followed by
reconnect attempts with exponential backoff. What changes across connections is hidden from
the rest of the run:

- timestamps: one strictly increasing timeline (`RebasingClock`, in 1/90000 s), each connection
  continuing one frame after the last frame of the one before (an outage leaves no hole in the
  recording; the event log has its wall times);
- size and pixel format: a camera that comes back at another resolution has its frames scaled to
  the first connection's size (swscale, on the Source thread), so the model, the encoder and the
  output keep their size; the event log says so;
- the decoder: each connection gets a fresh one, so a codec change is no problem either.

- audio: the first audio stream's packets are copied (`passthrough`, not decoded), their
  timestamps moved by the same offset as the video's of the same connection, so sync is kept
  across reconnects. Audio that arrives before a connection's first video frame is dropped (its
  place on the timeline is not known yet), as is a reconnection's audio when its codec, rate or
  channels differ from the first connection's (the output stream cannot change); the run says so.
  Other streams are not read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from types import TracebackType
from typing import Self

import av
import av.stream

from vsr.errors import Cancelled, ConfigError, InputError
from vsr.media.formats import format_traits, nearest_format
from vsr.media.frame import PIXEL_FORMATS, Frame, pixel_layout
from vsr.media.info import VideoInfo, color_of
from vsr.media.input_file import codec_name
from vsr.media.live_events import EventLog, LiveEvent, ReconnectPolicy
from vsr.media.live_input import LiveConnection, LiveConnectOptions, live_kind, open_live, redact
from vsr.media.planes import plane_views
from vsr.media.timestamps import RebasingClock
from vsr.text import counted

__all__ = ["LIVE_TIME_BASE", "EventLog", "LiveEvent", "LiveSource", "ReconnectPolicy"]

log = logging.getLogger(__name__)

LIVE_TIME_BASE = Fraction(1, 90000)  # RTP's video clock; 1/1000 (RTMP) converts to it exactly
_FALLBACK_RATE = Fraction(25)


def _audio_signature(audio: av.audio.stream.AudioStream | None) -> tuple[object, ...] | None:
    """What a reconnected stream's audio must repeat for its packets to go on in the output's
    stream: its place, codec, rate, channels and codec configuration."""
    if audio is None:
        return None
    context = audio.codec_context
    return (audio.index, context.name, context.sample_rate, context.channels, bytes(context.extradata or b""))


class LiveSource:
    """The video of a live input as `Frame`s, across disconnects; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        connect: LiveConnectOptions | None = None,
        reconnect: ReconnectPolicy | None = None,
        events: EventLog | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Connects now (with ``reconnect``'s tries): `InputError` when they run out, `Cancelled`
        when ``stop`` (the event `stop` sets; another thread may set it) is set first."""
        kind = live_kind(url)
        if kind is None:
            raise ConfigError(f"not a live input: {url} (rtsp://, rtmp://, http(s):// or /dev/videoN)")
        if kind == "camera" and not os.path.exists(url):
            # a device that is not there at the start is a wrong path, not a dropped feed: no retries
            # (one that disappears mid-run, an unplugged USB camera, is reconnected as any feed)
            raise InputError(f"camera {url} does not exist (no such V4L2 device on this machine)")
        self.url, self.kind = url, kind
        self.connect = connect or LiveConnectOptions()
        self.reconnect = reconnect or ReconnectPolicy()
        self.events = events or EventLog()
        self.end_reason: str | None = None  # why items() ended, when it ended on its own
        self._stop = stop if stop is not None else threading.Event()
        self._runtime_notes: list[str] = []
        self._frames_out = 0
        self._started = False
        self._closed = False
        self._resized_connection = -1
        self._audio: av.audio.stream.AudioStream | None = None
        self._audio_signature: tuple[object, ...] | None = None
        self._audio_ok = False  # the current connection's audio can go into the output's stream
        self._audio_last: int | None = None
        self._audio_dropped = 0  # packets out of order or before the first video frame
        self._new_connection = False  # the next frame starts a new connection (a discontinuity)
        self._failures, self._last_failure = 0, ""
        self.connections = 0
        first = self._connect_with_retries(initial=True)
        if first is None:
            if self._stop.is_set():
                raise Cancelled(f"stopped before {redact(url)} connected")
            raise InputError(self._gave_up_message())
        self._conn: LiveConnection | None = first
        try:
            self._info = self._describe(first)
            self._audio = first.audio
            self._audio_ok = first.audio is not None
            # what later connections' audio is compared with: read now, while the first
            # connection is open (its stream object must not be read once it is closed)
            self._audio_signature = _audio_signature(first.audio)
        except BaseException:
            first.close()
            raise

    # -- public ---------------------------------------------------------------------------------

    @property
    def info(self) -> VideoInfo:
        return self._info

    @property
    def passthrough(self) -> tuple[av.stream.Stream, ...]:
        return (self._audio,) if self._audio is not None else ()

    def drop_audio(self, reason: str) -> None:
        """Do not give out the audio (call before `items`): the output cannot carry it."""
        if self._audio is not None:
            self._audio = None
            self._runtime_notes.append(f"the live input's audio is not recorded: {reason}")

    @property
    def frames_read(self) -> int:
        return self._frames_out

    @property
    def pts_repairs(self) -> int:
        return self._clock.repairs

    def run_notes(self) -> list[str]:
        notes = list(self._runtime_notes)
        if self._audio_dropped:
            notes.append(
                f"dropped {self._audio_dropped} audio packets that came before a connection's first "
                "video frame or out of order"
            )
        if self._clock.repairs:
            notes.append(
                f"repaired {self._clock.repairs} timestamps that were missing, repeated or went back"
            )
        if self._clock.discontinuities:
            notes.append(f"the stream's clock jumped back {self._clock.discontinuities} times; rebased")
        return notes

    def stop(self) -> None:
        """Make `items` end soon (at the next frame, or within the read timeout); any thread."""
        self._stop.set()

    def items(self) -> Iterator[Frame | av.Packet]:
        """Frames until stopped or the reconnect policy gives up (then ``end_reason`` says why)."""
        if self._started:
            raise RuntimeError("LiveSource.items() can be iterated only once")
        self._started = True
        try:
            while self._conn is not None and not self._stop.is_set():
                for item in self._conn.frames():
                    if isinstance(item, av.Packet):
                        packet = self._audio_packet(item)
                        if packet is not None:
                            yield packet
                        continue
                    yield self._frame(item)
                    if self._stop.is_set():
                        return
                reason = self._conn.end_reason
                self._conn.close()
                self._conn = None
                if self._stop.is_set():
                    return
                self.events.add("disconnected", f"{redact(self.url)}: {reason}")
                if self.reconnect.attempts == 0:
                    self.end_reason = f"the stream ended ({reason}); reconnecting is off"
                    return
                self._conn = self._connect_with_retries(initial=False)
                if self._conn is not None:
                    self._clock.start_connection(self._frame_duration(self._conn.video))
                    self._audio_ok = self._audio_matches(self._conn.audio)
                    self._new_connection = True
                elif not self._stop.is_set():
                    self.end_reason = self._gave_up_message()
                    self.events.add("gave_up", self.end_reason, level=logging.ERROR)
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._conn is not None and not self._started:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- connecting -----------------------------------------------------------------------------

    def _connect_with_retries(self, *, initial: bool) -> LiveConnection | None:
        """A new connection, or None when stopped or when the policy gives up (``_last_failure``)."""
        failures = 0
        while not self._stop.is_set():
            # the first connection is tried at once; a reconnect waits first, the server may be
            # restarting
            if (not initial or failures) and self._stop.wait(self.reconnect.delay(failures - initial)):
                return None
            try:
                conn = self._open_once()
            except InputError as error:
                failures += 1
                self._failures, self._last_failure = failures, str(error)
                kind = "connect_failed" if initial else "reconnect_failed"
                exhausted = self.reconnect.exhausted(failures - initial)
                # the last attempt's failure is in the error or the gave_up line that follows
                self.events.add(
                    kind,
                    f"attempt {failures}: {error}",
                    level=logging.DEBUG if exhausted else logging.WARNING,
                )
                if exhausted:
                    return None
                continue
            self.connections += 1
            first = conn.pending[0]
            what = "connected" if self.connections == 1 else "reconnected"
            self.events.add(what, f"{redact(self.url)} ({first.width}x{first.height})", level=logging.INFO)
            return conn
        return None

    def _open_once(self) -> LiveConnection:
        container = open_live(self.url, self.kind, self.connect)
        try:
            conn = LiveConnection(container, self.url, self.connect.read_timeout_s)
            conn.first_frame(self.connect.open_timeout_s)
        except InputError as error:
            container.close()
            raise InputError(f"connected, but no video frame came: {error}") from None
        except BaseException:
            container.close()
            raise
        return conn

    def _gave_up_message(self) -> str:
        return f"cannot connect to {redact(self.url)} after {counted(self._failures, 'attempt')}: {self._last_failure}"

    # -- frames ---------------------------------------------------------------------------------

    def _audio_matches(self, audio: av.audio.stream.AudioStream | None) -> bool:
        if self._audio is None or audio is None:
            return False
        same = _audio_signature(audio) == self._audio_signature
        if not same:
            self.events.add("audio_dropped", "the reconnected stream's audio differs from the first's")
        return same

    def _audio_packet(self, packet: av.Packet) -> av.Packet | None:
        """``packet`` on the output timeline (the video's offset of this connection), or None."""
        offset = self._clock.offset
        if self._audio is None or not self._audio_ok:
            return None
        time_base = packet.time_base
        if offset is None or packet.pts is None or time_base is None:
            self._audio_dropped += 1
            return None
        pts = packet.pts + round(offset * LIVE_TIME_BASE / time_base)
        if self._audio_last is not None and pts <= self._audio_last:
            self._audio_dropped += 1
            return None
        shift = pts - packet.pts
        packet.pts = pts
        packet.dts = packet.dts + shift if packet.dts is not None else pts
        self._audio_last = pts
        return packet

    def _frame_duration(self, video: av.video.stream.VideoStream) -> int:
        rate = video.average_rate or video.guessed_rate or _FALLBACK_RATE
        return max(1, round(1 / (Fraction(rate) * LIVE_TIME_BASE)))

    def _describe(self, conn: LiveConnection) -> VideoInfo:
        first = conn.pending[0]
        video = conn.video
        notes: list[str] = []
        decoded_fmt = first.format.name
        pix_fmt = decoded_fmt if decoded_fmt in PIXEL_FORMATS else nearest_format(decoded_fmt, PIXEL_FORMATS)
        if pix_fmt != decoded_fmt:
            notes.append(f"decoded pixel format {decoded_fmt} is converted to {pix_fmt}")
        if first.interlaced_frame:
            notes.append(
                "the live input is interlaced; its fields are passed through (no live deinterlacing)"
            )
        if conn.others:
            notes.append("only the video and the first audio stream of a live input are recorded")
        self._pix_fmt, self._layout = pix_fmt, pixel_layout(pix_fmt)
        self._size = (first.width, first.height)
        self._color = color_of(first, video.codec_context)
        self._clock = RebasingClock(LIVE_TIME_BASE, frame_duration=self._frame_duration(video))
        rate = video.average_rate or video.guessed_rate
        sar = video.sample_aspect_ratio
        return VideoInfo(
            path=self.url,
            container_format=conn.container.format.name,
            codec=codec_name(video),
            width=first.width,
            height=first.height,
            pix_fmt=pix_fmt,
            decoded_pix_fmt=decoded_fmt,
            time_base=LIVE_TIME_BASE,
            average_rate=Fraction(rate) if rate else None,
            frame_count=None,
            frame_count_estimated=True,
            duration=None,
            color=self._color,
            rotation=0.0,
            interlaced=bool(first.interlaced_frame),
            deinterlaced=False,
            sample_aspect_ratio=Fraction(sar) if sar else None,
            start_pts=0,
            bits=format_traits(pix_fmt).bits,
            timestamps_synthesized=False,
            stream_index=video.index,
            notes=tuple(notes),
        )

    def _frame(self, frame: av.VideoFrame) -> Frame:
        width, height = self._size
        if (frame.width, frame.height) != self._size or frame.format.name != self._pix_fmt:
            if (frame.width, frame.height) != self._size and self._resized_connection != self.connections:
                self._resized_connection = self.connections
                self.events.add(
                    "resized",
                    f"the stream is now {frame.width}x{frame.height}; its frames are scaled to "
                    f"{width}x{height}, the size the run started with",
                )
            frame = frame.reformat(width=width, height=height, format=self._pix_fmt)
        pts = self._clock.next(frame.pts, frame.time_base or LIVE_TIME_BASE)
        out = Frame(
            index=self._frames_out,
            pts=pts,
            time_base=LIVE_TIME_BASE,
            pix_fmt=self._pix_fmt,
            width=width,
            height=height,
            planes=plane_views(frame, self._layout),
            color=self._color,
            key_frame=bool(frame.key_frame),
            produced_at=time.monotonic(),
        )
        if self._new_connection:
            self._new_connection = False
            out.extra["discontinuity"] = True
        self._frames_out += 1
        return out
