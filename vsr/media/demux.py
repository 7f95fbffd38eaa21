"""Demuxing an input once and decoding its video, with damaged data handled in one place.

What FFmpeg does with damaged input, and what is done about it here:

- A file cut short: the demuxer hands over the last, incomplete video packet flagged corrupt,
  then ends. That packet is dropped (`VideoDemuxer.tail_dropped`): decoding it gives at best a
  damaged frame, and with frame threading its error makes FFmpeg drop the frames still in
  flight. Every complete frame before it is delivered.
- An error while flushing the decoder at the end: the same situation seen later; the frames
  decoded so far are kept and the reason is recorded (`tail_failure`).
- Any other FFmpeg error while demuxing or decoding (garbage mid-stream): fatal, raised as the
  `InputError` that ``on_error`` builds, because frames would otherwise silently go missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import av
import av.container
import av.stream

from vsr.errors import InputError
from vsr.media.ffmpeg_errors import ffmpeg_reason

__all__ = ["VideoDemuxer"]


class VideoDemuxer:
    """Yields the decoded frames of ``video`` and the raw packets of ``passthrough``, demux order."""

    def __init__(
        self,
        container: av.container.InputContainer,
        video: av.video.stream.VideoStream,
        passthrough: Sequence[av.stream.Stream],
        on_error: Callable[[BaseException], InputError],
    ) -> None:
        self._container = container
        self._video = video
        # Attachments have no packets: they live in the header and are copied from there.
        self._streams = [video, *(s for s in passthrough if s.type != "attachment")]
        self._on_error = on_error
        self._flushed = False
        self.decoded = 0
        self.tail_dropped = False
        self.tail_failure: str | None = None

    def run(self) -> Iterator[av.VideoFrame | av.Packet]:
        video_index = self._video.index
        packets = self._container.demux(self._streams)
        held: av.Packet | None = None
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as error:
                raise self._on_error(error) from None
            if packet.stream_index != video_index:
                # PyAV ends the demux with one empty packet per stream, meant to flush decoders.
                # Passthrough streams are not decoded, and an empty packet muxed into the output
                # would be an error, so they are dropped here. (``dts is None`` is not the test:
                # real packets of some streams, e.g. in MPEG-TS, have no dts.)
                if packet.size:
                    yield packet
                continue
            if held is not None:
                # A corrupt-flagged packet followed by more data was damaged, not cut: decode it
                # (decoders conceal damage and the frame count stays right).
                if packet.size == 0:
                    self.tail_dropped = True
                else:
                    yield from self._decode(held)
                held = None
            if packet.is_corrupt and packet.size:
                held = packet  # decided when the next video packet shows whether the file ends
                continue
            yield from self._decode(packet)
        if held is not None:
            self.tail_dropped = True
        if not self._flushed:
            yield from self._decode(None)

    def _decode(self, packet: av.Packet | None) -> Iterator[av.VideoFrame]:
        flushing = packet is None or packet.size == 0
        self._flushed |= flushing
        try:
            frames = self._video.decode(packet)
        except EOFError:
            return  # the decoder was already flushed
        except av.FFmpegError as error:
            if not flushing:
                raise self._on_error(error) from None
            self.tail_failure = (
                f"the end of the input could not be decoded ({ffmpeg_reason(error)}); it is "
                f"probably truncated, the {self.decoded} frames before it are kept"
            )
            return
        self.decoded += len(frames)
        yield from frames
