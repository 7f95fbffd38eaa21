"""The input's container tags, video stream tags and chapters reach the output, as FFmpeg copies them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

import vsr
from vsr.media import FileSource, spec_for_input
from vsr.media.probe import probe
from vsr.media.segments import SegmentSink

from clips import write_clip

METADATA = {
    "title": "Holiday",
    "artist": "Someone",
    "comment": "by the sea",
    "creation_time": "2019-07-01T10:00:00.000000Z",
}
CHAPTERS = [(0, 200, "Beach"), (200, 480, "Dinner")]  # ms; the clip lasts 0.48 s
RUN = {"model": "bicubic", "scale": 2, "preset": "ultrafast"}


def _tagged(folder: Path, ext: str) -> Path:
    return write_clip(
        folder / f"tagged{ext}",
        audio=True,
        metadata=METADATA,
        video_tags={"language": "fra", "title": "camera 1"},
        chapters=CHAPTERS,
    )


def _read(
    path: Path,
) -> tuple[dict[str, str], dict[str, str], list[tuple[Fraction, Fraction, str]], list[str]]:
    """Container tags (keys in lower case), video stream tags, chapters in seconds, stream types."""
    with av.open(str(path)) as c:
        chapters = [
            (ch["start"] * ch["time_base"], ch["end"] * ch["time_base"], ch["metadata"].get("title", ""))
            for ch in c.chapters()
        ]
        tags = {k.lower(): v for k, v in c.metadata.items()}
        video = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
        if "name" in video:  # MP4/MOV read a track's title back as "name"
            video["title"] = video.pop("name")
        return tags, video, chapters, [s.type for s in c.streams]


EXPECTED_CHAPTERS = [(Fraction(s, 1000), Fraction(e, 1000), t) for s, e, t in CHAPTERS]


@pytest.mark.parametrize(("src_ext", "out_ext"), [(".mp4", ".mkv"), (".mkv", ".mp4"), (".mkv", ".mov")])
def test_container_tags_video_tags_and_chapters_reach_the_output(
    tmp_path: Path, src_ext: str, out_ext: str
) -> None:
    src = _tagged(tmp_path, src_ext)
    out = tmp_path / f"out{out_ext}"
    vsr.upscale(src, out, **RUN)
    tags, video, chapters, _ = _read(out)
    for key, value in METADATA.items():
        assert tags[key] == value, key
    assert video["title"] == "camera 1"
    if out_ext != ".mkv":  # Matroska keeps a track's language in its header, not as a tag
        assert video["language"] == "fra"
    assert chapters == EXPECTED_CHAPTERS
    # the muxer's own tags are its own: no MP4 brands in Matroska, this FFmpeg as the encoder
    assert "major_brand" not in tags or tags["major_brand"] != "isom"
    assert tags["encoder"].startswith("Lavf") and tags["encoder"] != "Lavf58.0.0"


def test_an_mp4s_chapter_track_is_not_reported_or_doubled(tmp_path: Path) -> None:
    # an MP4 keeps its chapters twice: as chapters, and as a text track FFmpeg lists as a data
    # stream; the output gets the chapters once and makes its own track, with no "not copied" note
    src = _tagged(tmp_path, ".mp4")
    assert _read(src)[3] == ["video", "audio", "data"]
    once = tmp_path / "once.mp4"
    summary = vsr.upscale(src, once, **RUN)
    assert not [n for n in summary.notes if "data stream" in n]
    twice = tmp_path / "twice.mp4"
    vsr.upscale(once, twice, **RUN)
    _, _, chapters, types = _read(twice)
    assert chapters == EXPECTED_CHAPTERS
    assert types == ["video", "audio", "data"]


def test_a_container_without_chapters_says_they_are_dropped(tmp_path: Path) -> None:
    src = _tagged(tmp_path, ".mkv")
    summary = vsr.upscale(src, tmp_path / "out.ts", **RUN)
    assert ".ts cannot store chapters; the input's 2 are not copied" in summary.notes
    assert _read(tmp_path / "out.ts")[2] == []


def test_segments_keep_the_tags_but_not_the_whole_inputs_chapters(tmp_path: Path) -> None:
    src = _tagged(tmp_path, ".mkv")
    with FileSource(src) as source:
        spec, _ = spec_for_input(source.info, preset="ultrafast")
        sink = SegmentSink(tmp_path / "rec.mkv", spec, 0.2)
        frames = [item for item in source.items() if not isinstance(item, av.Packet)]
    for frame in frames:
        sink.write_frame(frame)
    sink.close()
    assert len(sink.segments) == 3
    assert "segments do not carry chapters; the input's 2 are not copied" in sink.notes
    for segment in sink.segments:
        tags, _, chapters, _ = _read(segment)
        assert tags["title"] == "Holiday" and chapters == []


def test_a_file_without_tags_gets_none_from_vsr(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "plain.mkv")
    out = tmp_path / "out.mp4"
    vsr.upscale(src, out, **RUN)
    tags, _, chapters, _ = _read(out)
    assert set(tags) == {"major_brand", "minor_version", "compatible_brands", "encoder"}
    assert chapters == []


def test_probe_lists_the_tags_and_chapters(tmp_path: Path) -> None:
    lines = probe(_tagged(tmp_path, ".mp4")).describe()
    (tag_line,) = [line for line in lines if line.startswith("tags:")]
    assert sorted(tag_line.removeprefix("tags:").strip().split(", ")) == sorted(METADATA)
    assert 'chapters:  2: 0.000 s "Beach", 0.200 s "Dinner"' in lines
    assert any(
        line.startswith("stream:    #2 data") and line.endswith("chapter titles [eng]") for line in lines
    )


def test_the_shared_phone_clip_keeps_its_date_and_place(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "video" / "sample_1080x720_aac.mp4"
    out = tmp_path / "out.mp4"
    vsr.upscale(src, out, **RUN)
    tags, video, _, _ = _read(out)
    assert tags["creation_time"] == "2016-05-31T17:01:35.000000Z"
    assert video["creation_time"] == "2016-05-31T17:01:35.000000Z"
    # the MP4 muxer writes ISO 6709 with four decimals: the same place
    assert tags["location"] == "+40.6800-074.5000/"


def test_spec_for_input_carries_the_tags(tmp_path: Path) -> None:
    with FileSource(_tagged(tmp_path, ".mkv")) as source:
        spec, _ = spec_for_input(source.info)
    assert dict(spec.tags.metadata)["title"] == "Holiday"
    assert [(c.start * c.time_base, dict(c.metadata)["title"]) for c in spec.tags.chapters] == [
        (Fraction(0), "Beach"),
        (Fraction(1, 5), "Dinner"),
    ]


def test_cover_art_is_named_as_such_when_it_is_not_copied(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "cover.mp4", cover=True)
    summary = vsr.upscale(src, tmp_path / "out.mp4", **RUN)
    assert summary.frames_out == 12  # the picture is not taken for the video
    assert "video stream #1 (png) is not copied: it is cover art (an attached picture)" in summary.notes


@pytest.mark.parametrize("out_ext", [".mov", ".mp4", ".mkv"])
def test_the_timecode_is_kept_and_its_track_is_not_reported(tmp_path: Path, out_ext: str) -> None:
    # a MOV keeps a camera's timecode in a tmcd track, which FFmpeg reads into the video stream's
    # "timecode" tag; MP4/MOV outputs make their own tmcd track from the tag, Matroska keeps the tag
    src = write_clip(tmp_path / "camera.mov", video_tags={"timecode": "01:02:03:04"})
    assert _read(src)[3] == ["video", "data"]
    out = tmp_path / f"out{out_ext}"
    summary = vsr.upscale(src, out, **RUN)
    assert not [n for n in summary.notes if "data stream" in n]
    _, video, _, types = _read(out)
    assert video["timecode"] == "01:02:03:04"
    assert types == (["video"] if out_ext == ".mkv" else ["video", "data"])
    if out_ext != ".mkv":
        with av.open(str(out)) as c:
            assert c.streams[1].metadata["timecode"] == "01:02:03:04"


@pytest.mark.parametrize("out_ext", [".mp4", ".mov"])
def test_a_phones_metadata_keys_are_kept(tmp_path: Path, out_ext: str) -> None:
    # iPhones store place, make and capture date as QuickTime metadata keys (mdta), which FFmpeg's
    # MP4 muxer writes only when told to: vsr tells it for an input that had them
    keys = {
        "com.apple.quicktime.location.ISO6709": "+48.8584+002.2945+035.000/",
        "com.apple.quicktime.make": "Apple",
        "com.apple.quicktime.creationdate": "2024-05-01T10:00:00+0200",
    }
    src = write_clip(
        tmp_path / "phone.mov", metadata=keys, container_options={"movflags": "use_metadata_tags"}
    )
    expected = {k.lower(): v for k, v in keys.items()}  # (_read gives the keys in lower case)
    assert {k: v for k, v in _read(src)[0].items() if k.startswith("com.")} == expected
    out = tmp_path / f"out{out_ext}"
    vsr.upscale(src, out, **RUN)
    assert {k: v for k, v in _read(out)[0].items() if k.startswith("com.")} == expected


def test_androids_slow_motion_capture_rate_is_kept(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "video" / "vfr_slow_motion.mp4"
    out = tmp_path / "out.mp4"
    vsr.upscale(src, out, **RUN)
    tags = _read(out)[0]
    assert (tags["com.android.capture.fps"], tags["com.android.version"]) == ("240.000000", "10")
