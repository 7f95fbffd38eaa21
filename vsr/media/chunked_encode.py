"""`ChunkedEncoder`: one video stream encoded by several encoder instances, a chunk of GOPs each.

x264/x265 threads scale poorly at 4K on many cores; independent encoders do not share anything.
The frame stream is cut into chunks of whole GOPs (``chunk_frames``, a multiple of the GOP the
encoders are given): each chunk goes to a fresh encoder, so it starts with an IDR and no frame
refers across a boundary. ``instances`` worker threads encode chunks concurrently (PyAV releases
the GIL in ``avcodec_send_frame``/``receive_packet``), and the caller's thread muxes the packets
chunk by chunk in stream order, so the output is one ordinary stream.

What makes the stitched stream the same as one encoder's:

- Headers: every instance is configured like the stream's own context and must produce the same
  extradata (SPS/PPS, or VPS/SPS/PPS with x265's info SEI); `probe_instances` checks before the
  header is written (the caller falls back to one instance), and every chunk's encoder is checked
  again (an `OutputError`, never a silently mixed stream).
- Timestamps: pts are the frames' own. With B-frames an encoder starts a chunk with dts before
  its first pts (x264/x265 take dts from the pts ``delay`` frames earlier in presentation order,
  extrapolated below the first), which would collide with the previous chunk's last dts when the
  delays differ or the frame rate varies. The stitched stream gets that same rule across
  chunks: the n-th packet's dts is the pts of the (n - delay)-th frame, ``delay`` being the first
  chunk's (so a constant-rate stream gets exactly one encoder's dts). A chunk whose packets break
  dts < next dts, dts <= pts, the frame count or the leading keyframe is refused before any of it
  is muxed.
- Passthrough packets (audio, subtitles) are held until the video has been muxed up to their
  time, so the interleaving stays as one encoder's would be, however far behind the chunks are.

Memory: at most ``instances`` chunks are in flight (queued frames, an encoder each, packets);
the caller blocks in `encode` when it would start one more. A worker's failure reaches the caller
at its next call; `abort` muxes every chunk finished before the failed one, so the file holds
whole GOPs up to there.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import av.video.codeccontext

from vsr.errors import ConfigError, OutputError, VsrError

if TYPE_CHECKING:
    from vsr.media.output_spec import VideoOutputSpec

__all__ = [
    "CHUNKABLE_CODECS",
    "MAX_ENCODER_INSTANCES",
    "ChunkedEncoder",
    "check_encoder_instances",
    "chunk_frames",
    "chunked_settings",
    "probe_instances",
]

log = logging.getLogger(__name__)

# Software encoders whose fresh instance always starts with an IDR and whose headers depend only
# on their settings. SVT-AV1 and NVENC keep one instance (not checked; NVENC is one chip anyway).
CHUNKABLE_CODECS = frozenset({"libx264", "libx265"})
# Each instance holds up to a chunk of raw frames (2 s of 4K 4:2:0 at 24 fps: 600 MB): past the
# cores of a large host more only costs memory.
MAX_ENCODER_INSTANCES = 16
_GOP_SECONDS = 2  # a keyframe every 2 s when the user gave no GOP ("g"): also chunk length
_MIN_CHUNK_FRAMES = 8  # shorter chunks would be mostly encoder start-up and IDRs
# Passthrough packets held back for the video at most (AAC: about 3 minutes): a file whose audio
# times run far ahead of its video must not hold all of its audio in memory.
_MAX_HELD = 8192

VideoContext = av.video.codeccontext.VideoCodecContext
# (encoder options, encoder threads) -> a configured, unopened encoder of the stream's settings
EncoderFactory = Callable[[dict[str, str], int], VideoContext]


def check_encoder_instances(count: int, codec: str) -> None:
    """A one-line `ConfigError` for an ``--encoders`` value that cannot be used with ``codec``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"--encoders must be a whole number of at least 1, got {count!r}")
    if count > MAX_ENCODER_INSTANCES:
        raise ConfigError(
            f"--encoders {count} is more than {MAX_ENCODER_INSTANCES}; each instance holds a chunk "
            "of frames in memory"
        )
    if count > 1 and codec not in CHUNKABLE_CODECS:
        raise ConfigError(
            f"--encoders {count} needs {' or '.join(sorted(CHUNKABLE_CODECS))}; {codec} encodes with "
            "one instance (use --encoders 1)"
        )


def chunk_frames(spec: VideoOutputSpec) -> tuple[int, int]:
    """(GOP, frames per chunk): the user's ``g`` or 2 s of frames, and the chunk, a multiple of it."""
    given = spec.options.get("g")
    if given is not None:
        try:
            gop = int(given)
        except ValueError:
            raise ConfigError(f"encoder option g must be a number of frames, got {given!r}") from None
    else:
        gop = round(_GOP_SECONDS * spec.frame_rate) if spec.frame_rate else 48
    gop = max(1, gop)
    return gop, gop * math.ceil(_MIN_CHUNK_FRAMES / gop)


def chunked_settings(spec: VideoOutputSpec, options: dict[str, str]) -> tuple[dict[str, str], int]:
    """The encoder options and threads every instance (and the stream's own context) gets.

    The GOP is set explicitly so that chunk boundaries fall on GOP boundaries; with ``threads``
    0 (auto) the cores are shared out, instead of each instance taking 1.5x all of them.
    """
    gop, _ = chunk_frames(spec)
    threads = spec.threads or max(1, (os.cpu_count() or 1) // spec.encoder_instances)
    return {**options, "g": str(gop)}, threads


def probe_instances(make: EncoderFactory, options: dict[str, str], threads: int) -> bytes | None:
    """The extradata two fresh instances agree on, or None when they differ (the caller says so)."""
    headers = []
    for _ in range(2):
        context = make(options, threads)
        context.open()
        headers.append(bytes(context.extradata or b""))
    return headers[0] if headers[0] == headers[1] else None


class _Chunk:
    """One chunk: its frames as they come, then the packets its encoder made (or the failure)."""

    def __init__(self, number: int, first_index: int) -> None:
        self.number = number
        self.first_index = first_index  # the first frame's index, for messages
        self.frames: queue.SimpleQueue[av.VideoFrame | None] = queue.SimpleQueue()
        self.pts: list[int] = []
        self.packets: list[av.Packet] = []
        self.error: BaseException | None = None
        self.done = threading.Event()


class ChunkedEncoder:
    """``instances`` encoders on chunks of ``chunk`` frames; packets go to ``mux`` in stream order.

    ``make`` builds an unopened encoder like ``stream``'s; ``extradata`` is what the stream's
    header carries. ``fail(error, doing)`` phrases a worker's encoder error as the output's one
    line. `encode`, `hold`, `finish` and `abort` are called from one thread, the one that owns
    the container; ``mux`` is called only from it.
    """

    def __init__(
        self,
        *,
        make: EncoderFactory,
        options: dict[str, str],
        threads: int,
        instances: int,
        chunk: int,
        extradata: bytes,
        stream: av.video.stream.VideoStream,
        mux: Callable[[list[av.Packet]], None],
        fail: Callable[[BaseException, str], BaseException],
    ) -> None:
        self._make, self._options, self._threads = make, options, threads
        self._instances, self._chunk_frames = instances, chunk
        self._extradata, self._stream = extradata, stream
        self._time_base: Fraction = stream.codec_context.time_base
        self._mux, self._fail = mux, fail
        self._jobs: queue.SimpleQueue[_Chunk | None] = queue.SimpleQueue()
        self._in_flight: deque[_Chunk] = deque()
        self._current: _Chunk | None = None
        self._chunks = 0
        self._failed: _Chunk | None = None
        self._held: deque[av.Packet] = deque()
        # stitching: the delay (packets whose dts precede the first pts), then the frames' pts
        # in presentation order that the next packets' dts are taken from
        self._delay: int | None = None
        self._dts_source: deque[int] = deque()
        self._packets_muxed = 0
        self.frames_muxed = 0  # frames whose packets are in the output: what a crash keeps
        self._last_dts: int | None = None
        self._muxed_until: Fraction | None = None
        # started with the first chunks (none for a run that fails before its first frame)
        self._workers: list[threading.Thread] = []

    # -- the caller's side ----------------------------------------------------------------------

    def encode(self, frame: av.VideoFrame, index: int) -> None:
        """Queue ``frame`` (pts set, in the stream's time base); may mux chunks, may block."""
        self._raise_failure()
        chunk = self._current
        if chunk is None:
            while len(self._in_flight) >= self._instances:  # bounded: wait for the oldest
                self._mux_chunk(self._in_flight.popleft())
            chunk = self._current = _Chunk(self._chunks, index)
            self._chunks += 1
            self._in_flight.append(chunk)
            self._jobs.put(chunk)
            if len(self._workers) < self._instances:
                worker = threading.Thread(target=self._work, name=f"vsr-encoder-{self._chunks}", daemon=True)
                worker.start()
                self._workers.append(worker)
        chunk.pts.append(frame.pts)
        chunk.frames.put(frame)
        if len(chunk.pts) == self._chunk_frames:
            self._end_current()
        while self._in_flight and self._in_flight[0].done.is_set() and self._in_flight[0] is not chunk:
            self._mux_chunk(self._in_flight.popleft())

    def hold(self, packet: av.Packet) -> None:
        """Mux a passthrough packet once the video has been muxed up to its time."""
        self._held.append(packet)
        self._release_held()

    def finish(self) -> None:
        """Encode and mux everything queued, then stop the workers; raise the first failure."""
        try:
            self._end_current()
            while self._in_flight:
                self._mux_chunk(self._in_flight.popleft())
            self._release_held(everything=True)
        finally:
            self._stop()

    def abort(self) -> None:
        """Mux every chunk that encodes, up to the first failed one; stop the workers; raise nothing."""
        self._end_current()
        try:
            while self._in_flight:
                self._mux_chunk(self._in_flight.popleft())
            self._release_held(everything=True)
        except (VsrError, av.FFmpegError, OSError, ValueError) as error:
            log.warning("after a failure, the chunks from the failed one on were not written: %s", error)
        finally:
            for chunk in self._in_flight:
                chunk.done.wait()
            self._in_flight.clear()
            self._stop()

    # -- stitching ------------------------------------------------------------------------------

    def _end_current(self) -> None:
        if self._current is not None:
            self._current.frames.put(None)
            self._current = None

    def _raise_failure(self) -> None:
        if self._failed is not None:
            self._raise(self._failed)

    def _raise(self, chunk: _Chunk) -> None:
        error = chunk.error
        assert error is not None
        if isinstance(error, VsrError):
            raise error
        if isinstance(error, av.FFmpegError | OSError | MemoryError):
            raise self._fail(error, f"encoding the chunk from frame {chunk.first_index}") from None
        raise error  # not an encoder's failure: a bug, with its own traceback

    def _mux_chunk(self, chunk: _Chunk) -> None:
        chunk.done.wait()
        if chunk.error is not None:
            self._failed = chunk
            self._raise(chunk)
        packets = self._stitch(chunk)
        self._last_dts = packets[-1].dts  # in the encoder's time base: muxing rescales the packets
        for packet in packets:
            packet.stream = self._stream
        self._mux(packets)
        self._packets_muxed += len(packets)
        self.frames_muxed += len(chunk.pts)
        self._muxed_until = chunk.pts[-1] * self._time_base
        chunk.packets = []
        self._release_held()

    def _stitch(self, chunk: _Chunk) -> list[av.Packet]:
        """The chunk's packets with the stream's dts, checked whole before any is muxed."""
        packets, first = chunk.packets, chunk.first_index

        def refuse(why: str) -> OutputError:
            return OutputError(
                f"the encoder's chunk from frame {first} cannot be joined to the stream: {why}; "
                "encode with --encoders 1"
            )

        if sorted(p.pts for p in packets if p.pts is not None) != chunk.pts:
            raise refuse(f"{len(chunk.pts)} frames went in, packets for {len(packets)} came out")
        if not packets[0].is_keyframe:
            raise refuse("it does not start with a keyframe")
        if self._delay is None:
            self._delay = sum(1 for p in packets if p.dts is not None and p.dts < chunk.pts[0])
        self._dts_source.extend(chunk.pts)
        last, stitched = self._last_dts, []
        for n, packet in enumerate(packets, start=self._packets_muxed):
            dts = packet.dts if n < self._delay else self._dts_source.popleft()
            if dts is None or (last is not None and dts <= last) or dts > packet.pts:
                raise refuse(f"dts {dts} after {last} for pts {packet.pts}")
            stitched.append(dts)
            last = dts
        for packet, dts in zip(packets, stitched, strict=True):
            packet.dts = dts
        return packets

    def _release_held(self, *, everything: bool = False) -> None:
        due = []
        while self._held:
            packet = self._held[0]
            stamp, time_base = packet.dts if packet.dts is not None else packet.pts, packet.time_base
            waits = stamp is not None and time_base is not None and len(self._held) <= _MAX_HELD
            if waits and not everything:
                if self._muxed_until is None or stamp * time_base > self._muxed_until:
                    break
            due.append(self._held.popleft())
        if due:
            self._mux(due)

    # -- the workers ----------------------------------------------------------------------------

    def _work(self) -> None:
        while (chunk := self._jobs.get()) is not None:
            try:
                self._encode_chunk(chunk)
            except BaseException as error:  # handed to the caller's thread, raised there
                chunk.error = error
                self._failed = self._failed or chunk
            finally:
                chunk.done.set()

    def _encode_chunk(self, chunk: _Chunk) -> None:
        context = self._make(self._options, self._threads)
        context.open()
        if bytes(context.extradata or b"") != self._extradata:
            raise OutputError(
                f"the encoder for the chunk from frame {chunk.first_index} made other headers "
                "(extradata) than the stream's; encode with --encoders 1"
            )
        packets = chunk.packets
        while (frame := chunk.frames.get()) is not None:
            packets += encode_frame(context, frame)
        packets += encode_frame(context, None)

    def _stop(self) -> None:
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join()


def encode_frame(context: VideoContext, frame: av.VideoFrame | None) -> list[av.Packet]:
    """One call into the encoder (None flushes); a module function so a test can make it fail."""
    return context.encode(frame)
