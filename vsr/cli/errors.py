"""How the CLI reports failures: one line on stderr and an exit code, a traceback only with --debug."""

from __future__ import annotations

import functools
import logging
import os
import select
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from vsr.errors import VsrError

__all__ = ["reports_errors", "say_error", "set_debug"]

SIGPIPE_EXIT = 141  # what a shell reports for a command killed by SIGPIPE (128 + 13)

P = ParamSpec("P")
R = TypeVar("R")
_debug = False


def set_debug(enabled: bool) -> None:
    global _debug
    _debug = enabled
    logging.basicConfig(
        level=logging.DEBUG if enabled else logging.WARNING, format="vsr: %(levelname)s %(name)s: %(message)s"
    )


def say_error(message: str) -> None:
    """One red ``vsr: error:`` line on stderr (for a command that reports several before its exit)."""
    typer.secho(f"vsr: error: {message}", err=True, fg=typer.colors.RED)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: `VsrError` -> its message and exit code; anything else -> a bug report line."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except VsrError as exc:
            if _debug:
                raise
            say_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError as exc:
            if not _stdout_reader_gone():
                raise _internal_error(exc) from None
            # The reader of stdout went away (`vsr probe clip.mp4 | head -3`): stop quietly, as
            # Unix tools do, and keep Python's exit-time flush from writing to the dead pipe.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(SIGPIPE_EXIT) from None
        except KeyboardInterrupt:
            if _debug:
                raise
            say_error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            raise _internal_error(exc) from None

    return wrapper


def _internal_error(exc: BaseException) -> BaseException:
    """A bug report line for ``exc`` and exit code 1; with --debug, ``exc`` itself."""
    if _debug:
        return exc
    text = str(exc).splitlines()[0] if str(exc) else ""
    say_error(f"internal error ({type(exc).__name__}: {text}); run again with --debug and report it")
    return typer.Exit(1)


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reading end is closed (poll reports POLLERR on it).

    A BrokenPipeError can also come from a socket (PyAV's ``av.error.BrokenPipeError`` when an
    RTSP server hangs up), which is an error to report, so the pipe itself is asked.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
