"""The exceptions vsr raises for conditions a user can cause or fix.

    VsrError
     ├── InputError      (also ValueError)   the input is missing, unreadable or undecodable
     ├── OutputError     (also OSError)      the output cannot be written or encoded
     ├── ModelError      (also ValueError)   unknown model name, unrecognised checkpoint
     ├── EngineError                         stale, foreign or unbuildable TensorRT engine
     ├── DeviceError     (also RuntimeError) the requested device or precision is unavailable
     ├── ConfigError     (also ValueError)   a bad option or option combination (usage error)
     └── Cancelled                           the user interrupted the run (Ctrl-C, SIGTERM)

Every message says what was seen and what to do about it, on one line. The CLI prints
``str(error)`` and exits with ``error.exit_code``. Anything that is not a ``VsrError`` is a bug in
vsr: the CLI reports it in one line too, and shows its traceback with ``--debug``.
"""

from __future__ import annotations

__all__ = [
    "Cancelled",
    "ConfigError",
    "DeviceError",
    "EngineError",
    "InputError",
    "ModelError",
    "OutputError",
    "VsrError",
]


class VsrError(Exception):
    """Base of every error vsr raises on purpose."""

    exit_code: int = 1


class InputError(VsrError, ValueError):
    """The input cannot be opened, has no video, or cannot be decoded."""


class OutputError(VsrError, OSError):
    """The output cannot be created, encoded or finalised."""


class ModelError(VsrError, ValueError):
    """A model name is unknown or a checkpoint is not an architecture vsr knows."""


class EngineError(VsrError):
    """A TensorRT engine is missing, stale, foreign to this GPU, or failed to build."""


class DeviceError(VsrError, RuntimeError):
    """The requested device, backend or precision is not available here."""


class ConfigError(VsrError, ValueError):
    """An option or combination of options is invalid (a usage error)."""

    exit_code = 2


class Cancelled(VsrError):
    """The run was interrupted by the user; what was encoded so far was kept."""

    exit_code = 130
