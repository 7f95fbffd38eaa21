"""The flicker metric: known values on a synthetic translating pattern; the meter of several
restorations at once, and the crop picker that finds where one flickers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vsr.errors import InputError
from vsr.quality.flicker import FlickerMeter, flicker
from vsr.quality.flicker_crops import FlickerCropPicker


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour texture in [40, 215]: detail for the flow to lock on, no clipping when flickered."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (40 + 175 * smooth).astype(np.float64)


def _translating(frames: int, step: tuple[int, int] = (2, 1), size: tuple[int, int] = (64, 96)) -> list:
    """A window moving ``step`` (dx, dy) pixels a frame over a larger texture: pure integer motion."""
    h, w = size
    big = _texture(h + frames * step[1] + 1, w + frames * step[0] + 1)
    return [big[t * step[1] : t * step[1] + h, t * step[0] : t * step[0] + w] for t in range(frames)]


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_pure_translation_scores_zero_and_alternating_flicker_scores_twice_its_amplitude() -> None:
    truth = [_u8(f) for f in _translating(6)]
    still = flicker(truth, truth)
    assert still.pairs == 5 and still.valid_fraction > 0.9
    assert still.output == still.ground_truth < 0.5  # only interpolation of a sub-level flow error

    d = 5.0
    flickering = [_u8(f + (d if t % 2 else -d)) for t, f in enumerate(_translating(6))]
    scores = flicker(flickering, truth)
    assert scores.output == pytest.approx(2 * d, abs=0.6)
    assert scores.ground_truth == pytest.approx(still.ground_truth)  # the truth's own is unchanged


def test_a_steady_brightness_offset_is_not_flicker() -> None:
    truth = [_u8(f) for f in _translating(4)]
    brighter = [_u8(f + 12.0) for f in _translating(4)]
    assert flicker(brighter, truth).output < 0.5


def test_unusable_input_is_one_line_input_error() -> None:
    truth = [_u8(f) for f in _translating(3)]
    with pytest.raises(InputError, match="at least two frames"):
        flicker(truth[:1], truth[:1])
    with pytest.raises(InputError, match="ground truth's size"):
        flicker([t[:32] for t in truth], truth)


def test_the_meter_scores_several_streams_as_flicker_scores_each() -> None:
    truth = [_u8(f) for f in _translating(5)]
    d = 4.0
    flickering = [_u8(f + (d if t % 2 else -d)) for t, f in enumerate(_translating(5))]
    meter = FlickerMeter(2)
    maps = [meter.update(t, [a, b]) for t, a, b in zip(truth, truth, flickering, strict=True)]
    assert maps[0] is None and all(m is not None for m in maps[1:])
    steady, flick = meter.scores()
    assert steady == flicker(truth, truth)
    assert flick == flicker(flickering, truth)
    assert flick.ratio > 5 * steady.ratio
    # the per-pixel maps are what the scores average
    pair = maps[2]
    assert pair is not None and pair.outputs[1].shape == (64, 96)
    assert pair.outputs[1][pair.valid].mean() == pytest.approx(2 * d, abs=0.6)


def test_the_picker_finds_the_square_and_the_frames_that_flicker() -> None:
    frames = 9
    truth = [_u8(f) for f in _translating(frames)]
    # a 12 x 12 patch at x 60..71, y 20..31 flickers by +-10 in frames 5..7 only
    out = [t.astype(np.float64) for t in truth]
    for t in (5, 6, 7):
        out[t][20:32, 60:72] += 10.0 if t % 2 else -10.0
    out8 = [_u8(o) for o in out]
    meter, picker = FlickerMeter(1), FlickerCropPicker(0, columns=3, size=16)
    for t in range(frames):
        errors = meter.update(truth[t], [out8[t]])
        if errors is not None:
            picker.update(t, [out8[t], truth[t]], errors)
    window = picker.window()
    assert window is not None and window.size == 16
    # frames 5, 6, 7 and 8 see the patch change; any 3 consecutive of them, and the square covers it
    assert set(window.frames) <= {5, 6, 7, 8} and len(window.frames) == 3
    assert 72 - 16 <= window.x <= 60 and 32 - 16 <= window.y <= 20
    assert (
        window.images[1][0] == truth[window.frames[0]][window.y : window.y + 16, window.x : window.x + 16]
    ).all()
