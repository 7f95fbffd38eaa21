"""A real RTSP server for the live-input tests: ``tools/rtsp_server.py`` as a subprocess.

The server runs under Debian's ``/usr/bin/python3`` because GStreamer's Python bindings
(python3-gi) do not load into the project's virtualenv. Tests skip, saying why, where it or
gst-rtsp-server is missing (``.ci/run`` installs them).

    >>> server = RtspServer(clip)     # listens on a free port; server.url
    >>> server.kill(); server.start() # the same URL again, as a camera that rebooted
    >>> server.freeze()               # SIGSTOP: connections stay open, nothing is sent
"""

from __future__ import annotations

import functools
import os
import selectors
import signal
import subprocess
from pathlib import Path

__all__ = ["RtspServer", "rtsp_unavailable"]

SYSTEM_PYTHON = Path("/usr/bin/python3")
SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "rtsp_server.py"
_CHECK = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('qtdemux', 'h264parse', 'rtph264pay', 'x264enc') "
    "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))"
)


@functools.cache
def rtsp_unavailable() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing (the RTSP test server runs under Debian's Python)"
    try:
        done = subprocess.run(
            [str(SYSTEM_PYTHON), "-c", _CHECK], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run {SYSTEM_PYTHON}: {error}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return (
            f"gst-rtsp-server is not usable from {SYSTEM_PYTHON} ({last}); install python3-gi "
            "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{base,good,bad,ugly}"
        )
    if done.stdout.strip():
        return f"GStreamer elements missing: {done.stdout.strip()} (install gstreamer1.0-plugins-*)"
    return None


class RtspServer:
    """One server process at a time, restartable on the port it first got."""

    def __init__(self, clip: Path | None = None, *, stamp: str | None = None, fps: int = 25) -> None:
        self.args = [str(clip)] if clip is not None else ["--stamp", str(stamp), "--fps", str(fps)]
        self.port = 0
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self.start()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout_s: float = 20.0) -> None:
        if self._process is not None:
            raise RuntimeError("the server is already running")
        process = subprocess.Popen(
            [str(SYSTEM_PYTHON), str(SCRIPT), *self.args, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout_s)
        line = process.stdout.readline().strip() if ready else ""
        if not line.startswith("rtsp://"):
            process.kill()
            _, err = process.communicate()
            raise RuntimeError(f"the RTSP server did not start: {line or err.strip() or 'no output'}")
        self._process = process
        self.url = line
        self.port = int(line.rsplit(":", 1)[1].split("/", 1)[0])

    def kill(self) -> None:
        """SIGKILL: connections drop at once, as when a camera loses power."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self._process is None:
            return
        self.thaw()
        self.kill()
