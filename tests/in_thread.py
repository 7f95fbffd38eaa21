"""Helpers for tests that act on a run while it goes: the run on a thread, a slowed-down backend.

>>> run = InThread(pipeline.run)
>>> run.wait_for(lambda: pipeline.frames_in >= 12, "frames")   # fails if the run ended first
>>> summary = run.result()                                      # re-raises the run's error
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["InThread", "SlowBackend"]

T = TypeVar("T")


class InThread(Generic[T]):
    """``target()`` on a thread of its own, started at once."""

    def __init__(self, target: Callable[[], T]) -> None:
        self._target = target
        self.outcome: dict[str, object] = {}
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.outcome["value"] = self._target()
        except BaseException as error:
            self.outcome["error"] = error

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert self.thread.is_alive(), f"the run ended while waiting for {what}: {self.outcome}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def result(self, timeout_s: float = 30.0) -> T:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the run hung"
        if "error" in self.outcome:
            raise self.outcome["error"]  # type: ignore[misc]
        return self.outcome["value"]  # type: ignore[return-value]


class SlowBackend:
    """A backend that takes ``delay_s`` more per call: a model slower than the input."""

    def __init__(self, inner: object, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def run(self, batch: object) -> object:
        time.sleep(self.delay_s)
        return self.inner.run(batch)  # type: ignore[attr-defined]
