#!/usr/bin/python3
"""A small RTSP server on 127.0.0.1 for vsr's live-input tests and latency benchmark.

    /usr/bin/python3 tools/rtsp_server.py CLIP.mp4 [--port 0] [--mount /stream] [--audio]
    /usr/bin/python3 tools/rtsp_server.py --stamp 640x360 --fps 25
    /usr/bin/python3 tools/rtsp_server.py [CLIP.mp4] --record OUT.mkv [--record-mount /publish]

Run it with Debian's Python: it needs GStreamer's gst-rtsp-server through python3-gi, which does
not load into a virtualenv (Debian packages: gir1.2-gst-rtsp-server-1.0, python3-gi,
gstreamer1.0-plugins-base/good/bad/ugly). Once listening it prints its URLs on stdout, one a
line: the serving mount's (``rtsp://127.0.0.1:PORT/stream``) when there is one, then the record
mount's with ``--record``; so ``--port 0`` (any free port) can be read back.

Modes:
- CLIP (MP4/MOV or Matroska with H.264 video): every client gets its own session that plays the
  clip once from its start at its own frame rate (GStreamer paces it by the clock), then ends.
- ``--stamp WxH``: generated frames, forever, each carrying the wall-clock time it was made
  (``time.time()`` in microseconds, 48 bits as black/white 16x16 blocks in the top luma rows;
  see ``tools/bench_live.py`` for the reader), encoded by x264 with ``tune=zerolatency``.
- ``--audio`` (with CLIP): the clip's first audio track (AAC) is served too, as a second stream.
- ``--record OUT.mkv``: a mount that takes a publish (RTSP ANNOUNCE/RECORD, as ``ffmpeg -f rtsp``
  sends it) of H.264 (plus AAC with ``--audio``) and writes it, untouched, into OUT.mkv
  (Matroska). The file is finished when the publisher tears the session down; each new publish
  rewrites it. Alone or beside a CLIP/--stamp mount.

Not the project's code: a test fixture. It has no dependency besides GStreamer, and it exits on
SIGTERM/SIGINT (the tests also SIGKILL and SIGSTOP it on purpose).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

STAMP_BITS = 48
STAMP_BLOCK = 16  # pixels per block side; the reader samples block centres


def _clip_launch(clip: Path) -> str:
    if '"' in str(clip):
        raise SystemExit(f"clip path must not contain a double quote: {clip}")
    demux = "matroskademux" if clip.suffix.lower() in (".mkv", ".webm") else "qtdemux"
    # SPS/PPS before every IDR frame, so that a decoder can start at any keyframe. h264parse does
    # it per frame; rtph264pay's config-interval would do it per slice, and FFmpeg's parser then
    # splits a multi-slice keyframe into two broken frames.
    return (
        f'( filesrc location="{clip}" ! {demux} name=demux demux.video_0 ! queue '
        "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
    )


def _clip_audio_launch(clip: Path) -> str:
    # the video branch as in _clip_launch, plus the first audio track as a second stream
    return _clip_launch(clip)[:-2] + " demux.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 )"


def _record_launch(path: Path, audio: bool) -> str:
    if '"' in str(path):
        raise SystemExit(f"record path must not contain a double quote: {path}")
    # depay<N> are matched, in order, to the streams of the publisher's SDP
    sound = " rtpmp4gdepay name=depay1 ! aacparse ! queue ! mux." if audio else ""
    return (
        "( rtph264depay name=depay0 ! h264parse ! queue ! mux."
        f'{sound} matroskamux name=mux ! filesink location="{path}" )'
    )


def _record_rtp_times(media: GstRtspServer.RTSPMedia) -> None:
    # The jitterbuffer's default (slave) mode stamps buffers from their arrival time, skewed towards
    # the sender's clock: a publisher that sends faster than real time (a file republished) gets
    # arrival times, not its own, and late-looking packets dropped. buffer-mode none keeps the RTP
    # timestamps, which is what a recording of the publish should hold.
    def set_mode(element: Gst.Element) -> None:
        factory = element.get_factory()
        if factory is not None and factory.get_name() == "rtpbin":
            element.set_property("buffer-mode", 0)

    media.get_element().get_parent().iterate_recurse().foreach(set_mode)


def _stamp_launch(width: int, height: int, fps: int) -> str:
    caps = f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1"
    return (
        f"( appsrc name=src is-live=true do-timestamp=true format=time caps={caps} "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bframes=0 "
        "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
    )


class StampPusher:
    """Pushes generated frames into one session's appsrc at ``fps`` until the session goes away."""

    def __init__(self, appsrc: Gst.Element, width: int, height: int, fps: int) -> None:
        self.appsrc, self.width, self.height, self.fps = appsrc, width, height, fps
        ramp = bytes((16 + (x * 219) // max(width - 1, 1)) for x in range(width))
        self._ramp = ramp + ramp
        self._chroma = bytes([128]) * ((width // 2) * (height // 2) * 2)
        threading.Thread(target=self._run, daemon=True).start()

    def _frame(self, index: int, stamp_us: int) -> bytes:
        w, h, b = self.width, self.height, STAMP_BLOCK
        shift = (index * 4) % w
        rows = [self._ramp[shift : shift + w]] * h
        per_row = w // b
        for bit in range(STAMP_BITS):
            value = 235 if (stamp_us >> (STAMP_BITS - 1 - bit)) & 1 else 16
            by, bx = divmod(bit, per_row)
            block = bytes([value]) * b
            for y in range(by * b, by * b + b):
                row = rows[y]
                rows[y] = row[: bx * b] + block + row[bx * b + b :]
        return b"".join(rows) + self._chroma

    def _run(self) -> None:
        period = 1.0 / self.fps
        next_at = time.monotonic()
        index = 0
        while True:
            data = self._frame(index, int(time.time() * 1e6))
            result = self.appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data))
            if result != Gst.FlowReturn.OK:
                return  # the session was torn down
            index += 1
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", nargs="?", type=Path, help="H.264 clip (.mp4/.mov/.mkv) to serve")
    parser.add_argument("--stamp", metavar="WxH", help="serve generated wall-clock-stamped frames")
    parser.add_argument("--fps", type=int, default=25, help="frame rate of --stamp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--mount", default="/stream")
    parser.add_argument("--audio", action="store_true", help="serve (and record) an AAC track too")
    parser.add_argument("--record", metavar="OUT.mkv", type=Path, help="add a mount that records a publish")
    parser.add_argument("--record-mount", default="/publish")
    args = parser.parse_args()
    if args.clip is not None and args.stamp is not None:
        parser.error("give a CLIP or --stamp WxH, not both")
    if args.clip is None and args.stamp is None and args.record is None:
        parser.error("give a CLIP, --stamp WxH or --record OUT.mkv")
    if args.audio and args.stamp is not None:
        parser.error("--audio needs a CLIP (--stamp frames have no sound)")

    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    urls = []
    if args.clip is not None or args.stamp is not None:
        mounts.add_factory(args.mount, _serving_factory(args, parser))
        urls.append(args.mount)
    if args.record is not None:
        if not args.record.parent.is_dir():
            parser.error(f"the folder of --record does not exist: {args.record.parent}")
        factory = GstRtspServer.RTSPMediaFactory.new()
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        factory.set_launch(_record_launch(args.record.resolve(), args.audio))
        # EOS before the pipeline is torn down, so that matroskamux finishes the file
        factory.set_eos_shutdown(True)
        factory.connect("media-configure", lambda _f, media: media.connect("prepared", _record_rtp_times))
        mounts.add_factory(args.record_mount, factory)
        urls.append(args.record_mount)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    for mount in urls:
        print(f"rtsp://{args.host}:{server.get_bound_port()}{mount}", flush=True)
    loop.run()
    return 0


def _serving_factory(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory.new()
    if args.clip is not None:
        if not args.clip.is_file():
            parser.error(f"clip not found: {args.clip}")
        clip = args.clip.resolve()
        factory.set_launch(_clip_audio_launch(clip) if args.audio else _clip_launch(clip))
    else:
        width, height = (int(v) for v in args.stamp.lower().split("x"))
        if width // STAMP_BLOCK * (height // STAMP_BLOCK) < STAMP_BITS:
            parser.error(f"--stamp {args.stamp} is too small for {STAMP_BITS} blocks of {STAMP_BLOCK}px")
        factory.set_launch(_stamp_launch(width, height, args.fps))
        factory.connect(
            "media-configure",
            lambda _f, media: StampPusher(media.get_element().get_by_name("src"), width, height, args.fps),
        )
    return factory


if __name__ == "__main__":
    sys.exit(main())
