"""Per-frame metadata the decoder hands over that a re-encode cannot carry, named when first seen.

vsr encodes new frames (a new size), and PyAV offers no way to attach side data to a frame, so
what travels inside the video stream's own frames is lost: closed captions in the SEI, HDR10+
and Dolby Vision dynamic metadata, 360° and stereo 3D descriptions. HDR10's static metadata is
the exception: the encoders take it as options (`vsr.media.hdr`). The user is told once per kind,
at the frame where it first appears, instead of finding out from the output.
"""

from __future__ import annotations

import av
from av.sidedata.sidedata import SideData, SideDataContainer, Type

__all__ = ["UncarriedSideData", "frame_side_data"]


def frame_side_data(frame: av.VideoFrame) -> list[SideData]:
    """The side data of ``frame``, without the reference cycle ``frame.side_data`` makes.

    PyAV keeps the container it makes on the frame, and the container keeps the frame: such a
    frame is freed only by the cycle collector, which large C buffers do not prompt. Read on every
    frame of a 1536x1152 clip, that kept 136 MB more after 700 frames; a container made here is
    not kept by the frame, and both go when this one does. PyAV 18.1.0 iterates the container's
    items, 18.1.1 its types (a mapping's keys): both are read here.
    """
    container = SideDataContainer(frame)
    items = list(container)
    if items and not isinstance(items[0], SideData):  # the types: each one's item is container[type]
        items = [container[kind] for kind in items]
    return items


_NOT_CARRIED = {
    Type.A53_CC: "closed captions (CEA-608/708) inside the video stream",
    Type.DYNAMIC_HDR_PLUS: "HDR10+ dynamic metadata (HDR10's static metadata is kept)",
    Type.DOVI_RPU_BUFFER: "Dolby Vision metadata (its HDR10 base is kept)",
    Type.DOVI_METADATA: "Dolby Vision metadata (its HDR10 base is kept)",
    Type.SPHERICAL: "360-degree (spherical) video metadata",
    Type.STEREO3D: "stereoscopic 3D metadata",
}


class UncarriedSideData:
    """Watches decoded frames; `check` returns a note the first time a kind that is lost shows up."""

    def __init__(self) -> None:
        self._told: set[str] = set()

    def check(self, frame: av.VideoFrame, index: int) -> list[str]:
        notes = []
        for item in frame_side_data(frame):
            what = _NOT_CARRIED.get(item.type)
            if what is not None and what not in self._told:
                self._told.add(what)
                notes.append(f"{what}, first seen at frame {index}, cannot be carried to the output: dropped")
        return notes
