"""Blocking queue operations that give up when their run stops: no stage hangs on a dead neighbour.

A stage thread waits on a bounded queue in short slices (`POLL_S`) and looks at ``alive`` between
them, so a failure anywhere (which clears ``alive``) reaches every waiting stage within a slice.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

__all__ = ["POLL_S", "get_while", "put_while"]

POLL_S = 0.1  # how often a blocked stage looks at whether its run is still going


def put_while(q: queue.Queue[Any], item: object, alive: Callable[[], bool]) -> bool:
    """Put ``item``, waiting for room while ``alive()``; False if the run stopped first."""
    while alive():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def get_while(q: queue.Queue[Any], alive: Callable[[], bool]) -> object | None:
    """The next item, waiting for one while ``alive()``; None if the run stopped first."""
    while alive():
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            continue
    return None
