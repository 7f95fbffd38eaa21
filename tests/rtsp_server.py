"""A real RTSP server for the live-input tests: ``tools/rtsp_server.py`` as a subprocess.

The server runs under Debian's ``/usr/bin/python3`` because GStreamer's Python bindings
(python3-gi) do not load into the project's virtualenv. Tests skip, saying why, where it or
gst-rtsp-server is missing (``.ci/run`` installs them).

    >>> server = RtspServer(clip)     # listens on a free port; server.url
    >>> server.kill(); server.start() # the same URL again, as a camera that rebooted
    >>> server.freeze()               # SIGSTOP: connections stay open, nothing is sent
    >>> RtspServer(record=out_mkv)    # server.record_url takes a publish, written to out_mkv
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

    def __init__(
        self,
        clip: Path | None = None,
        *,
        stamp: str | None = None,
        fps: int = 25,
        audio: bool = False,
        record: Path | None = None,
    ) -> None:
        if clip is not None:
            self.args = [str(clip)]
        elif stamp is not None:
            self.args = ["--stamp", str(stamp), "--fps", str(fps)]
        else:
            self.args = []
        self.args += ["--audio"] if audio else []
        self.args += ["--record", str(record)] if record is not None else []
        self._lines = (clip is not None or stamp is not None) + (record is not None)
        self.port = 0
        self.url = ""  # the serving mount's, or the record mount's when there is only that
        self.record_url = ""
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
        lines = [process.stdout.readline().strip() for _ in range(self._lines)] if ready else [""]
        if not all(line.startswith("rtsp://") for line in lines):
            process.kill()
            _, err = process.communicate()
            said = " ".join(lines).strip()
            raise RuntimeError(f"the RTSP server did not start: {said or err.strip() or 'no output'}")
        self._process = process
        line = self.url = lines[0]
        self.record_url = lines[-1] if "--record" in self.args else ""
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
