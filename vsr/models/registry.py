"""Which architecture a state dict is: an explicit, ordered list of detectors.

Each `Architecture` recognises its state dicts by their keys and builds the module and its
descriptor from tensor shapes alone, so any checkpoint of a known architecture loads, whatever its
name, scale or width. Nothing here knows model names. To support a new architecture, write its
module with an ``is_x`` and a ``build_x`` and add one entry to `ARCHITECTURES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

from vsr.models.compact import build_compact, is_compact
from vsr.models.denoise import build_ffdnet, is_ffdnet
from vsr.models.descriptor import LoadedModel
from vsr.models.rrdb import build_rrdb, is_rrdb

__all__ = ["ARCHITECTURES", "Architecture", "ArchitectureRegistry", "BuildFn"]


class BuildFn(Protocol):
    def __call__(
        self, state_dict: Mapping[str, Tensor], /, *, name: str, sha256: str | None
    ) -> LoadedModel: ...


@dataclass(frozen=True, kw_only=True)
class Architecture:
    id: str
    detect: Callable[[Mapping[str, Tensor]], bool]
    """True when the state dict's keys are this architecture's (shapes are not checked here)."""
    build: BuildFn
    """Infers hyperparameters from shapes, returns module + descriptor; `ModelError` on a misfit."""


class ArchitectureRegistry:
    """Architectures in detection order; the first whose ``detect`` accepts a state dict wins."""

    def __init__(self, architectures: Iterable[Architecture] = ()) -> None:
        self._entries: list[Architecture] = []
        for arch in architectures:
            self.register(arch)

    def register(self, arch: Architecture) -> None:
        if any(a.id == arch.id for a in self._entries):
            raise ValueError(f"architecture id {arch.id!r} is already registered")
        self._entries.append(arch)

    def ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self._entries)

    def detect(self, state_dict: Mapping[str, Tensor]) -> Architecture | None:
        return next((a for a in self._entries if a.detect(state_dict)), None)

    def __iter__(self) -> Iterator[Architecture]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


# The detectors are mutually exclusive (compact accepts nothing but body.N keys, ffdnet nothing
# but conv_in, body.N and conv_out, rrdb needs conv_first), so this order only matters for
# entries added later: put the more specific detector first.
ARCHITECTURES = ArchitectureRegistry(
    [
        Architecture(id="compact", detect=is_compact, build=build_compact),
        Architecture(id="rrdb", detect=is_rrdb, build=build_rrdb),
        Architecture(id="ffdnet", detect=is_ffdnet, build=build_ffdnet),
    ]
)
