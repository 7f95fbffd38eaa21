"""`check_paths`: what can be known of a run's input and output paths before anything is opened."""

from __future__ import annotations

from pathlib import Path

from vsr.errors import ConfigError
from vsr.media.containers import check_output_path, container_for, partial_path

__all__ = ["check_paths"]


def check_paths(input_path: str | Path, output_path: str | Path, *, overwrite: bool) -> None:
    """Checks that need no decoding, made before anything is printed or opened.

    The output's container must be one vsr writes, its folder writable, and it must be neither
    the input nor (without ``overwrite``) an existing file. Nor may the name it is written under
    until complete (``out.partial.mp4``) hold what an earlier, stopped run kept.
    """
    src, dst = Path(input_path), Path(output_path)
    kind = container_for(dst)
    if src.exists() and dst.exists() and src.resolve() == dst.resolve():
        raise ConfigError(f"output {dst} is the input file; choose another output path")
    if dst.exists() and not overwrite:
        raise ConfigError(f"output {dst} exists; pass --overwrite to replace it")
    kept = partial_path(dst)
    if not kind.playlist and kept.exists() and not overwrite:
        raise ConfigError(
            f"{kept} exists: what an earlier run kept when it stopped; move it away, or pass --overwrite "
            "to replace it"
        )
    check_output_path(dst, [src])
