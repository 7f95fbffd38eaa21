"""How the CLI reports failures: one line on stderr and an exit code, a traceback only with --debug."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from vsr.errors import VsrError

__all__ = ["reports_errors", "say_error", "set_debug"]

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
        except KeyboardInterrupt:
            if _debug:
                raise
            say_error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if _debug:
                raise
            text = str(exc).splitlines()[0] if str(exc) else ""
            say_error(f"internal error ({type(exc).__name__}: {text}); run again with --debug and report it")
            raise typer.Exit(1) from None

    return wrapper


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
