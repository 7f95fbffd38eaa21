"""Presentation timestamps the rest of the pipeline can trust: present, integer, strictly increasing.

Encoders refuse equal or decreasing pts ("non-strictly-monotonic PTS") and muxers refuse missing
ones, so a broken input would otherwise fail hours into a run. Repairs are the smallest that make
the sequence valid, and they are counted so the run can say how many it made.
"""

from __future__ import annotations

__all__ = ["PtsClock"]


class PtsClock:
    """Assigns each decoded frame, in presentation order, the pts it will carry to the muxer.

    ``synthesize=True`` is for inputs without any timestamps (raw elementary streams): frame n
    gets pts n, which is exact in a time base of 1/frame-rate. Otherwise the input pts are kept
    unless missing (previous + the last interval), repeated or going backwards (previous + 1 tick).
    """

    def __init__(self, *, synthesize: bool) -> None:
        self.synthesize = synthesize
        self.repairs = 0
        self._count = 0
        self._last: int | None = None
        self._step = 1

    def next(self, pts: int | None) -> int:
        if self.synthesize:
            value = self._count
        elif pts is None:
            value = 0 if self._last is None else self._last + self._step
            self.repairs += self._last is not None
        elif self._last is not None and pts <= self._last:
            value = self._last + 1
            self.repairs += 1
        else:
            value = pts
        if self._last is not None and value - self._last > 0:
            self._step = value - self._last
        self._last = value
        self._count += 1
        return value
