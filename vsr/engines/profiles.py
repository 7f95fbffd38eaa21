"""Shape profiles of an engine: which input sizes (and batch sizes) it accepts and is tuned for.

``--profile`` takes named frame sizes (``480p,720p,1080p``: one fixed-size profile each), a fixed
``WxH``, or one range ``min:WxH,opt:WxH,max:WxH``; given several times it adds profiles, all in
one engine. A fixed size is min = opt = max: a video keeps one frame size for its whole length,
and a fixed shape lets TensorRT pick kernels for exactly that shape. Sizes are rounded up to the
model's size multiple, because the pipeline pads frames to it before they reach the engine.
Batch sizes run from 1 (the short last batch of a stream) to ``batch``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vsr.errors import ConfigError

__all__ = [
    "MAX_SIDE",
    "NAMED_SIZES",
    "Shape",
    "ShapeProfile",
    "choose_profile",
    "parse_profiles",
    "profile_tag",
]

Shape = tuple[int, int, int, int]  # N, C, H, W as TensorRT sees the input

# 16:9 frame sizes (width, height); 480p is 854x480 (FWVGA), for 720x480 DVD video give 720x480.
NAMED_SIZES: dict[str, tuple[int, int]] = {
    "360p": (640, 360),
    "480p": (854, 480),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "2160p": (3840, 2160),
}
# Larger than any input frame vsr upscales; a guard against typos that would make TensorRT
# reserve gigabytes of workspace.
MAX_SIDE = 8192
MAX_BATCH = 64
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_TAG_LIMIT = 40
_USAGE = "use NAME (" + ", ".join(NAMED_SIZES) + "), WxH, or min:WxH,opt:WxH,max:WxH"


@dataclass(frozen=True, kw_only=True)
class ShapeProfile:
    """One TensorRT optimization profile of the engine's input tensor."""

    label: str  # "720p", "1280x720", or "64x64-256x256-512x512" (min-opt-max)
    min: Shape
    opt: Shape
    max: Shape

    def covers(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(
            lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True)
        )

    def describe(self) -> str:
        n, _, h, w = self.max
        batch = f"batch {n}" if self.min[0] == n else f"batch {self.min[0]}-{n}"
        if self.min[1:] == self.max[1:]:
            return f"{self.label} ({w}x{h}, {batch})"
        (_, _, h0, w0), (_, _, h1, w1) = self.min, self.opt
        return f"{w0}x{h0} to {w}x{h} (opt {w1}x{h1}), {batch}"

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ShapeProfile:
        def shape(key: str) -> Shape:
            value = data[key]
            if not isinstance(value, list) or len(value) != 4 or not all(isinstance(v, int) for v in value):
                raise ValueError(f"profile {key} {value!r}")
            return (value[0], value[1], value[2], value[3])

        label = data["label"]
        if not isinstance(label, str):
            raise ValueError(f"profile label {label!r}")
        return cls(label=label, min=shape("min"), opt=shape("opt"), max=shape("max"))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _size(text: str, spec: str) -> tuple[int, int]:
    if text in NAMED_SIZES:
        return NAMED_SIZES[text]
    m = _SIZE.match(text)
    if m is None:
        raise ConfigError(f"bad --profile {spec!r}: {text!r} is not a frame size; {_USAGE}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise ConfigError(f"bad --profile {spec!r}: {text} is outside 1x1 to {MAX_SIDE}x{MAX_SIDE}")
    return w, h


def _range(spec: str) -> dict[str, tuple[int, int]]:
    parts: dict[str, tuple[int, int]] = {}
    for item in spec.split(","):
        key, sep, value = item.strip().partition(":")
        if not sep or key not in ("min", "opt", "max") or key in parts:
            raise ConfigError(f"bad --profile {spec!r}: a range is exactly min:WxH,opt:WxH,max:WxH")
        parts[key] = _size(value.strip(), spec)
    if len(parts) != 3:
        raise ConfigError(f"bad --profile {spec!r}: a range is exactly min:WxH,opt:WxH,max:WxH")
    return parts


def parse_profiles(
    specs: Iterable[str], *, size_multiple: int, channels: int, batch: int
) -> tuple[ShapeProfile, ...]:
    """The optimization profiles that ``--profile`` values ask for, in order, duplicates dropped."""
    if not 1 <= batch <= MAX_BATCH:
        raise ConfigError(f"--batch must be 1 to {MAX_BATCH}, got {batch}")
    profiles: list[ShapeProfile] = []
    for spec in specs:
        spec = spec.strip()
        if "min:" in spec or "opt:" in spec or "max:" in spec:
            sizes = _range(spec)
            (w0, h0), (w1, h1), (w2, h2) = (
                tuple(_round_up(v, size_multiple) for v in sizes[k]) for k in ("min", "opt", "max")
            )
            if not (w0 <= w1 <= w2 and h0 <= h1 <= h2):
                raise ConfigError(f"bad --profile {spec!r}: min, opt and max must grow in width and height")
            found = [(f"{w0}x{h0}-{w1}x{h1}-{w2}x{h2}", (h0, w0), (h1, w1), (h2, w2))]
        else:
            found = []
            for item in filter(None, (s.strip() for s in spec.split(","))):
                w, h = (_round_up(v, size_multiple) for v in _size(item, spec))
                found.append((item if item in NAMED_SIZES else f"{w}x{h}", (h, w), (h, w), (h, w)))
            if not found:
                raise ConfigError(f"bad --profile {spec!r}: it names no size; {_USAGE}")
        for label, lo, mid, hi in found:
            profile = ShapeProfile(
                label=label,
                min=(1, channels, *lo),
                opt=(batch, channels, *mid),
                max=(batch, channels, *hi),
            )
            if all((p.min, p.opt, p.max) != (profile.min, profile.opt, profile.max) for p in profiles):
                profiles.append(profile)
    if not profiles:
        raise ConfigError(f"an engine needs at least one --profile; {_USAGE}")
    return tuple(profiles)


def profile_tag(profiles: Sequence[ShapeProfile]) -> str:
    """The part of an engine's file name that says which shapes it takes: readable, or a hash if long."""
    tag = "+".join(p.label for p in profiles)
    if len(tag) <= _TAG_LIMIT:
        return tag
    text = ";".join(f"{p.min}{p.opt}{p.max}" for p in profiles)
    return f"{len(profiles)}profiles-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def choose_profile(profiles: Sequence[ShapeProfile], shape: Sequence[int]) -> int | None:
    """The index of the profile to run ``shape`` with, or None when no profile covers it.

    A profile whose opt shape is exactly ``shape`` wins (its kernels were tuned for it), then the
    covering profile with the smallest max (the tightest range, the kernels closest to it).
    """
    covering = [i for i, p in enumerate(profiles) if p.covers(shape)]
    if not covering:
        return None
    exact = [i for i in covering if tuple(profiles[i].opt) == tuple(shape)]
    if exact:
        return exact[0]
    return min(covering, key=lambda i: (profiles[i].max[0] * profiles[i].max[2] * profiles[i].max[3], i))
