"""Files of the engine cache: written complete or not at all, and identified by their sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["partial_file", "publish", "sha256_file", "write_atomically"]


def partial_file(path: Path) -> Path:
    """An empty private temporary file beside ``path``, to be renamed onto it when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # ".partial." in the name: git ignores it, the cache listing skips it, and a crash never
    # leaves a file under the final name
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.partial.")
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: Path) -> Path:
    """Rename a complete temporary file onto its final name (atomic on one file system)."""
    # mkstemp makes the file private (0600); an engine cache is read by other users and services
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def write_atomically(data: bytes, path: Path) -> Path:
    tmp = partial_file(path)
    try:
        tmp.write_bytes(data)
        return publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
