"""Presentation timestamps the rest of the pipeline can trust: present, integer, strictly increasing.

Encoders refuse equal or decreasing pts ("non-strictly-monotonic PTS") and muxers refuse missing
ones, so a broken input would otherwise fail hours into a run. Repairs are the smallest that make
the sequence valid, and they are counted so the run can say how many it made.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

__all__ = ["GapWatch", "PtsClock", "RebasingClock"]


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


class RebasingClock:
    """Output pts for a live input: one strictly increasing timeline across many connections.

    Each connection (`start_connection`) starts its own timeline, usually at some arbitrary RTP
    clock value; its first timestamped frame is placed one frame duration after the last frame
    given out, and the connection's later frames keep their spacing from there. Within a
    connection, a missing pts gets the last interval, and a pts that is repeated or goes back is
    either moved one tick on (a small slip) or, if it goes back by more than a second (a server
    restarting its clock), starts a new timeline the same way a reconnect does.
    ``time_base`` is the output's; frames' own time bases are converted to it.
    """

    def __init__(self, time_base: Fraction, *, frame_duration: int) -> None:
        self.time_base = time_base
        self.repairs = 0
        self.discontinuities = 0
        self._step = max(1, frame_duration)
        self._last: int | None = None
        self._offset: int | None = None
        self._timed = False  # whether the previous frame of this connection had a real pts
        self._jump = round(1 / time_base)  # one second, in ticks

    @property
    def last(self) -> int | None:
        return self._last

    @property
    def offset(self) -> int | None:
        """What this connection's timestamps (in ``time_base`` ticks) get added, once known."""
        return self._offset

    def start_connection(self, frame_duration: int | None = None) -> None:
        self._offset = None
        self._timed = False
        if frame_duration:
            self._step = frame_duration

    def next(self, pts: int | None, time_base: Fraction) -> int:
        following = 0 if self._last is None else self._last + self._step
        if pts is None:
            value = following
            self.repairs += self._offset is not None
            self._timed = False
        else:
            ticks = round(pts * time_base / self.time_base)
            if self._offset is None:
                self._offset = following - ticks
            value = ticks + self._offset
            if self._last is not None and value <= self._last:
                if self._last - value > self._jump:
                    self.discontinuities += 1
                    self._offset = following - ticks
                    value = following
                else:
                    self.repairs += 1
                    value = self._last + 1
            elif self._timed and self._last is not None and value - self._last <= self._jump:
                self._step = value - self._last  # between two real timestamps, not across a gap
            self._timed = True
        self._last = value
        return value


class GapWatch:
    """Notices where a steady frame rate stops for a while: frames the input does not have.

    A damaged stretch that the demuxer skips leaves no error, only a jump in the timestamps; so
    does a recording that paused. Either way the output cannot have those frames, and the user
    is told where, once (`jumps` counts them all). Only a rate that has been steady for
    `_STEADY` frames counts: variable-rate video jumps by design. A gap is told only once a frame
    follows the one after it: a cut made without re-encoding (``-t 0.5 -c copy``) often ends
    with one frame past a gap (its B-frames before it were cut), which is no news.
    """

    _STEADY = 8
    _FACTOR = 1.5  # a step this many times the steady one is a gap (2x: one frame missing)

    def __init__(self, time_base: Fraction) -> None:
        self.time_base = time_base
        self.jumps = 0
        self._last: int | None = None
        self._steps: deque[int] = deque(maxlen=self._STEADY)
        self._pending: str | None = None  # the gap just before the latest frame, not told yet

    def next(self, pts: int) -> str | None:
        """Feed the next frame's pts; returns the note for the first gap, a frame after it."""
        note, self._pending = self._confirm(), None
        if self._last is not None:
            step = pts - self._last
            steady = self._steady_step()
            if steady is not None and step > self._FACTOR * steady:
                at = float(self._last * self.time_base)
                rate = 1 / (steady * self.time_base)
                missing = round(step / steady) - 1
                self._pending = (
                    f"the input has no frames for {float(step * self.time_base):.3f} s after {at:.3f} s "
                    f"(its steady {float(rate):.3f}".rstrip("0").rstrip(".")
                    + f" fps would have {missing} there): frames the recording dropped or paused for, or a damaged "
                    "stretch the demuxer skipped"
                )
            else:
                self._steps.append(step)
        self._last = pts
        return note

    def _confirm(self) -> str | None:
        if self._pending is None:
            return None
        self.jumps += 1
        return self._pending if self.jumps == 1 else None

    def _steady_step(self) -> Fraction | None:
        if len(self._steps) < self._STEADY:
            return None
        low, high = min(self._steps), max(self._steps)
        # Matroska's millisecond clock alternates 33 and 34 for 29.97 fps
        if low <= 0 or high - low > max(1, 0.05 * low):
            return None
        return Fraction(sum(self._steps), len(self._steps))
