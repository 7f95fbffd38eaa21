"""Small servers on 127.0.0.1 for the live-protocol tests: HTTP, RTMP, and one that never answers.

    >>> with HttpClipServer(clip, seconds=2) as http:  # GET http.url: the file, spread over 2 s
    >>> with HttpClipServer(clip, stall_after=20_000):  # sends 20 kB, then nothing (a stall)
    >>> with RtmpServer(clip) as rtmp:                  # rtmp.url plays the clip once, at its pace
    >>> with silent_listener() as port:                 # takes the TCP connection, never answers

`RtmpServer` is FFmpeg's own RTMP protocol in listen mode (``rtmpproto``: it answers a player's
connect, createStream and play, then sends what is muxed): the ``tee`` muxer is the only way
to give a muxer's output protocol an option through PyAV, which opens a muxer's file without
options (``av.open(url, "w", options=...)`` never reaches the protocol). It runs in a
subprocess because PyAV holds the GIL while FFmpeg waits for the player to connect.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["HttpClipServer", "RtmpServer", "free_port", "silent_listener"]

_CHUNK = 4096


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose connections the kernel completes and nobody ever reads: a frozen server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


class HttpClipServer:
    """Serves one file at ``url`` (``/clip.mp4``, any other path is a 404), without Range support.

    ``seconds``: the body is spread evenly over that long, as a live stream arrives;
    ``stall_after``: after that many bytes the server sends nothing more until it is stopped.
    """

    def __init__(self, path: Path, *, seconds: float = 0.0, stall_after: int | None = None) -> None:
        self.path, self.seconds, self.stall_after = path, seconds, stall_after
        self.released = threading.Event()
        self.stalled_at: float | None = None  # time.monotonic() when the stall began
        self.requests = 0
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/clip{path.suffix}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if self.path != "/" + owner.url.rsplit("/", 1)[1]:
                    self.send_error(404)
                    return
                data = owner.path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                pause = owner.seconds * _CHUNK / len(data)
                for start in range(0, len(data), _CHUNK):
                    if owner.stall_after is not None and start >= owner.stall_after:
                        owner.stalled_at = time.monotonic()
                        owner.released.wait(60)
                        return
                    try:
                        self.wfile.write(data[start : start + _CHUNK])
                        self.wfile.flush()
                    except OSError:
                        return  # the client went away
                    time.sleep(pause)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RtmpServer:
    """Plays ``clip``'s video (and first audio stream) once to the first player of ``url``."""

    def __init__(self, clip: Path, timeout_s: float = 20.0) -> None:
        port = free_port()
        self.url = f"rtmp://127.0.0.1:{port}/live/cam"
        self._process = subprocess.Popen(
            [sys.executable, __file__, self.url, str(clip)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Not a test connection: FFmpeg takes the first one as its player and then ends.
        deadline = time.monotonic() + timeout_s
        while not _listening(port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._process.kill()
                _, err = self._process.communicate()
                raise RuntimeError(f"the RTMP server did not start: {err.strip() or 'no output'}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self._process.pid

    def result(self, timeout_s: float = 30.0) -> tuple[int, int]:
        """(video packets, audio packets) sent, once the server has finished."""
        out, err = self._process.communicate(timeout=timeout_s)
        if self._process.returncode != 0:
            raise RuntimeError(f"the RTMP server failed: {err.strip()}")
        video, audio = out.split()
        return int(video), int(audio)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:``port``, read from /proc (connecting would count)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(
            fields[1] == wanted and fields[3] == "0A"  # 0A: TCP_LISTEN
            for fields in (line.split() for line in list(table)[1:])
        )


def _serve_rtmp(url: str, clip: str) -> None:
    import av

    with av.open(clip) as source:
        streams = [source.streams.video[0], *source.streams.audio[:1]]
        output = av.open(f"[f=flv:listen=1]{url}", "w", format="tee")
        outs = {s.index: output.add_stream_from_template(s) for s in streams}
        output.start_encoding()  # listens, and returns once a player has connected
        sent = {"video": 0, "audio": 0}
        started = time.monotonic()
        first: float | None = None
        for packet in source.demux(*streams):
            if packet.dts is None or not packet.size:
                continue
            at = float(packet.dts * packet.time_base)
            first = at if first is None else first
            time.sleep(max(0.0, started + at - first - time.monotonic()))  # at the clip's own pace
            kind = packet.stream.type
            packet.stream = outs[packet.stream.index]
            output.mux(packet)
            sent[kind] += 1
        output.close()
    print(sent["video"], sent["audio"], flush=True)


if __name__ == "__main__":
    if not os.path.exists("/proc/net/tcp"):
        raise SystemExit("needs Linux /proc/net/tcp")
    _serve_rtmp(sys.argv[1], sys.argv[2])
