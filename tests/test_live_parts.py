"""Live-mode parts without a server: input recognition, rebased timestamps, the drop-oldest queue."""

from __future__ import annotations

import queue
import time
from fractions import Fraction

import numpy as np

from vsr.media.color import ColorDescription
from vsr.media.frame import Frame
from vsr.media.live import EventLog
from vsr.media.live_input import live_kind, redact
from vsr.media.timestamps import RebasingClock
from vsr.pipeline.live import LiveControl, discontinuity


def test_live_inputs_are_recognised_and_passwords_kept_out_of_messages() -> None:
    assert live_kind("rtsp://cam/stream") == "rtsp" and live_kind("RTSPS://cam") == "rtsp"
    assert live_kind("rtmp://host/app/key") == "rtmp" and live_kind("https://host/live.ts") == "http"
    assert live_kind("/dev/video0") == "camera" and live_kind("/dev/video12") == "camera"
    assert live_kind("clip.mp4") is None and live_kind("/dev/video") is None and live_kind("ftp://x") is None
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/h264") == "rtsp://admin:***@10.0.0.5:554/h264"


def test_rebased_timestamps_continue_across_connections_and_clock_jumps() -> None:
    clock = RebasingClock(Fraction(1, 90000), frame_duration=3600)
    rtp = Fraction(1, 90000)
    first = [clock.next(p, rtp) for p in (None, 900_000, 903_600, 907_200)]
    assert first == [0, 3600, 7200, 10800]  # no pts on the first frame: it gets 0, the rest follow
    clock.start_connection()  # a reconnect: the new session's RTP clock starts anywhere
    second = [clock.next(p, rtp) for p in (5_000, 8_600)]
    assert second == [14400, 18000]  # one frame duration after the last frame written
    clock.start_connection()
    ms = Fraction(1, 1000)  # another time base (RTMP) converts exactly
    assert [clock.next(p, ms) for p in (5000, 5040)] == [21600, 25200]
    assert clock.next(5040, ms) == 25201 and clock.repairs == 1  # a repeated pts moves one tick on
    assert clock.next(5000, ms) == 25202 and clock.repairs == 2  # a small slip back: the same
    assert clock.next(0, ms) == 25202 + 3600 and clock.discontinuities == 1  # 5 s back: rebased
    assert clock.next(40, ms) == 25202 + 7200


def test_the_full_live_queue_drops_its_oldest_frame_and_counts_it() -> None:
    control = LiveControl(0.5, EventLog())
    q: queue.Queue[object] = queue.Queue(maxsize=3)
    frames = [_frame(i) for i in range(5)]
    for frame in frames:
        control.put_newest(q, frame)
    assert [q.get_nowait().index for _ in range(3)] == [2, 3, 4]  # type: ignore[attr-defined]
    assert control.dropped_full == 2
    old = _frame(9, produced_at=time.monotonic() - 0.6)
    assert control.is_late(old) and not control.is_late(_frame(10)) and control.dropped_late == 1
    control.finish()
    assert control.events.counts["dropped"] == 1  # one report for the burst


def test_a_dropped_new_connection_mark_passes_to_the_next_frame_kept() -> None:
    # Restore forgets the old connection's state at a frame marked `discontinuity`: a drop must
    # not lose the mark, or the first frames after a reconnect blend with the old scene
    control = LiveControl(0.5, EventLog())
    stale = time.monotonic() - 0.6
    first = _frame(0, produced_at=stale)
    first.extra["discontinuity"] = True
    second, third = _frame(1, produced_at=stale), _frame(2)
    assert control.is_late(first) and control.is_late(second)  # both too old: dropped
    assert not discontinuity(second)  # a dropped frame is not marked
    assert not control.is_late(third) and discontinuity(third)  # the first one kept is
    fourth = _frame(3)
    assert not control.is_late(fourth) and not discontinuity(fourth)  # and only that one

    q: queue.Queue[object] = queue.Queue(maxsize=2)
    frames = [_frame(i) for i in range(10, 14)]
    frames[0].extra["discontinuity"] = True
    for frame in frames[:3]:  # 10 (marked) and 11 fill the queue; 12 pushes 10 out
        control.put_newest(q, frame)
    assert [discontinuity(f) for f in frames[1:3]] == [True, False]  # 11, now first, has the mark
    q.get_nowait(), q.get_nowait()
    lone = queue.Queue(maxsize=1)
    frames[2].extra["discontinuity"] = True
    control.put_newest(lone, frames[2])
    control.put_newest(lone, frames[3])  # the marked frame was the only one: the new one inherits
    assert lone.get_nowait() is frames[3] and discontinuity(frames[3])
    assert control.dropped_full == 2 and control.dropped_late == 2


def _frame(index: int, produced_at: float | None = None) -> Frame:
    plane = np.zeros((2, 2), np.uint8)
    return Frame(
        index=index,
        pts=index,
        time_base=Fraction(1, 25),
        pix_fmt="gray",
        width=2,
        height=2,
        planes=(plane,),
        color=ColorDescription(),
        produced_at=time.monotonic() if produced_at is None else produced_at,
    )
