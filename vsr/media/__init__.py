"""Media I/O: decode files into `Frame`s with exact timestamps, encode and mux them back.

>>> with FileSource("in.mp4") as source:
...     spec, _ = spec_for_input(source.info, width=2 * source.info.width, height=2 * source.info.height)
...     with FileSink("out.mp4", spec, source.passthrough) as sink:
...         for item in source.items():
...             sink.write_frame(restore(item)) if isinstance(item, Frame) else sink.write_packet(item)
"""

from vsr.media.color import ColorDescription, ColorMatrix, ColorRange
from vsr.media.containers import CONTAINERS, container_for, incompatible_streams, partial_path
from vsr.media.encoders import ENCODERS, choose_output_pix_fmt, encoder_options
from vsr.media.frame import PIXEL_FORMATS, Frame, PixelLayout, pixel_layout
from vsr.media.images import IMAGE_SUFFIXES, StillImage, is_image_file, read_image, upright, write_image
from vsr.media.info import VideoInfo
from vsr.media.live import EventLog, LiveEvent, LiveSource, ReconnectPolicy
from vsr.media.live_input import LiveConnectOptions, live_kind
from vsr.media.output_spec import VideoOutputSpec, spec_for_input
from vsr.media.probe import MediaInfo, StreamInfo, probe
from vsr.media.segments import SegmentSink, parse_duration
from vsr.media.sink import FileSink
from vsr.media.source import DeinterlaceMode, FileSource

__all__ = [
    "CONTAINERS",
    "ENCODERS",
    "IMAGE_SUFFIXES",
    "PIXEL_FORMATS",
    "ColorDescription",
    "ColorMatrix",
    "ColorRange",
    "DeinterlaceMode",
    "EventLog",
    "FileSink",
    "FileSource",
    "Frame",
    "LiveConnectOptions",
    "LiveEvent",
    "LiveSource",
    "MediaInfo",
    "PixelLayout",
    "ReconnectPolicy",
    "SegmentSink",
    "StillImage",
    "StreamInfo",
    "VideoInfo",
    "VideoOutputSpec",
    "choose_output_pix_fmt",
    "container_for",
    "encoder_options",
    "incompatible_streams",
    "is_image_file",
    "live_kind",
    "parse_duration",
    "partial_path",
    "pixel_layout",
    "probe",
    "read_image",
    "spec_for_input",
    "upright",
    "write_image",
]
