"""Moving picture samples between PyAV frames and numpy planes without per-pixel Python work.

FFmpeg pads every line of a plane (``line_size`` >= the visible width) for SIMD alignment. The
pipeline wants planes without that padding, so both directions go through a strided view of the
plane buffer: reading is free (a view that keeps the decoder's frame alive), writing is one
``np.copyto`` per plane.
"""

from __future__ import annotations

import av
import numpy as np

from vsr.media.frame import PixelLayout

__all__ = ["copy_planes_into", "plane_views"]


def _channels(layout: PixelLayout, plane_index: int) -> int:
    if layout.family == "rgb":
        return 3  # packed rgb24/bgr24: one plane, three samples per pixel
    if layout.family == "nv" and plane_index == 1:
        return 2  # interleaved U/V
    return 1


def plane_views(
    frame: av.VideoFrame, layout: PixelLayout, *, writable: bool = False
) -> tuple[np.ndarray, ...]:
    """Views of ``frame``'s planes without line padding, shaped as `Frame` documents.

    The arrays reference the frame's buffers (numpy keeps the plane object, which keeps the
    frame), so they stay valid after ``frame`` goes out of scope and cost no copy. They are
    read-only unless asked: a decoder may share these buffers with frames it still references.
    """
    dtype = np.dtype(layout.dtype).newbyteorder("<")
    views = []
    for index, plane in enumerate(frame.planes):
        channels = _channels(layout, index)
        row_items = plane.line_size // dtype.itemsize
        flat = np.frombuffer(plane, dtype=dtype, count=plane.height * row_items)
        view = flat.reshape(plane.height, row_items)[:, : plane.width * channels]
        if channels > 1:
            view = view.reshape(plane.height, plane.width, channels)
        view.flags.writeable = writable
        views.append(view)
    return tuple(views)


def copy_planes_into(frame: av.VideoFrame, layout: PixelLayout, planes: tuple[np.ndarray, ...]) -> None:
    """Copy ``planes`` into a freshly allocated ``frame`` of the same format and size."""
    targets = plane_views(frame, layout, writable=True)
    if len(targets) != len(planes):
        raise ValueError(f"{frame.format.name} has {len(targets)} planes, got {len(planes)}")
    for index, (target, source) in enumerate(zip(targets, planes, strict=True)):
        if target.shape != source.shape:
            raise ValueError(
                f"plane {index} of a {frame.width}x{frame.height} {frame.format.name} frame is "
                f"{target.shape}, got {source.shape}"
            )
        # A uint16 plane cast into an 8-bit frame (or the reverse) would be silently wrong.
        if target.dtype.kind != source.dtype.kind or target.dtype.itemsize != source.dtype.itemsize:
            raise ValueError(
                f"plane {index} is {source.dtype}, a {frame.format.name} frame needs {target.dtype.name}"
            )
        np.copyto(target, source)
