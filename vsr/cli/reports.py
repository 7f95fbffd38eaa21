"""Report files the commands write after their work (``--json``, ``--out``): checked before it.

A run that encodes for an hour must not then fail on a misspelt report folder: the folder is
checked first, as the output's is, and a write that still fails (a full disk) is a one-line error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from vsr.errors import ConfigError, OutputError

__all__ = ["check_report_path", "write_json", "write_report"]


def check_report_path(path: str | None, option: str) -> None:
    """A usage error now if ``path`` (given to ``option``; ``-`` is stdout) could not be written."""
    if path is None or path == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {p} is a folder; give a file name")
    folder = p.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {p}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{option} {p}: folder {folder} is not writable")


def write_report(path: str, text: str) -> None:
    """``text`` to ``path``, or to stdout for ``-``."""
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({exc.strerror or exc})") from None


def write_json(path: str, data: dict[str, Any]) -> None:
    write_report(path, json.dumps(data, indent=2) + "\n")
