"""`IncreasingDts`: copied packets' decoding times as a strict muxer needs them.

MPEG-TS (and HLS, RTSP) refuse a dts equal to or below the one before; Matroska's 1 ms clock
gives such repeats to codecs with short frames (TrueHD: 0.83 ms). FFmpeg's command line moves
them forward by a tick (a pts below the new dts with them); so does this, in the output's time
base. The bytes stay as they are.
"""

from __future__ import annotations

from fractions import Fraction

import av
import av.stream

__all__ = ["IncreasingDts", "rescale"]


def rescale(value: int, source: Fraction, target: Fraction) -> int:
    """``value`` from one time base to another as av_rescale_q does: nearest, halves away from 0."""
    exact = Fraction(value) * source / target
    whole = exact.numerator // exact.denominator if exact >= 0 else -(-exact.numerator // exact.denominator)
    rest = abs(exact - whole)
    return whole + (1 if exact > 0 else -1) * (rest >= Fraction(1, 2))


class IncreasingDts:
    """The last dts muxed per output stream; `keep` moves a packet's up where the muxer needs it.

    ``strict``: the muxer refuses an equal dts too (no TS_NONSTRICT flag)."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self._last: dict[int, int] = {}  # in each output stream's time base
        self._moved: set[int] = set()

    def keep(self, packet: av.Packet, out: av.stream.Stream) -> bool:
        """Move ``packet`` (to be muxed into ``out``) past the last dts if it must be; True the
        first time a stream's packet is moved, for the one note that says so."""
        if packet.dts is None:
            return False
        source, target = Fraction(packet.time_base), Fraction(out.time_base)
        dts = rescale(packet.dts, source, target)
        last = self._last.get(out.index)
        floor = None if last is None else last + (1 if self.strict else 0)
        first_move = False
        if floor is not None and dts < floor:
            pts = None if packet.pts is None else rescale(packet.pts, source, target)
            duration = rescale(packet.duration, source, target) if packet.duration else 0
            packet.time_base = target  # (sets the unit only: the values below are in it)
            packet.dts = floor
            if pts is not None:
                packet.pts = max(pts, floor) if pts >= dts else pts
            packet.duration = duration
            first_move = out.index not in self._moved
            self._moved.add(out.index)
            dts = floor
        self._last[out.index] = dts
        return first_move
