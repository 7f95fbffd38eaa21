"""`vsr eval CLIP`: a video's frames scored with the image protocol, one report row a frame."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vsr.cli import app
from vsr.media import ColorDescription, ColorMatrix, ColorRange, Frame
from vsr.quality import clip_frames, evaluate_folder, frame_to_rgb

runner = CliRunner()


def _sample(shared_data: Path) -> Path:
    path = shared_data / "video" / "sample_1080x720_aac.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found (see ../shared/data/MANIFEST.md)")
    return path


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


def test_bicubic_on_five_frames_equals_scoring_them_as_images(shared_data: Path, tmp_path: Path) -> None:
    clip = _sample(shared_data)
    result = runner.invoke(app, ["eval", str(clip), "-s", "2", "--frames", "5", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["images"]] == [f"frame {i}" for i in range(5)]
    assert {(r["width"], r["height"]) for r in report["images"]} == {(1080, 720)}
    assert "bicubic x2 on 5 frames: PSNR-Y" in result.stderr

    # the same frames, written losslessly, through the image folder's code
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, rgb in clip_frames(clip, 5):
        Image.fromarray(rgb).save(folder / f"{index:03d}.png")
    as_images = evaluate_folder(folder, "bicubic", scale=2)
    assert len(as_images.rows) == 5
    for frame, image in zip(report["images"], as_images.rows, strict=True):
        assert frame["psnr_y"] == pytest.approx(image.psnr_y, abs=0.01)
        assert frame["ssim_y"] == pytest.approx(image.ssim_y, abs=1e-4)
    assert report["mean"]["psnr_y"] == pytest.approx(as_images.mean_psnr_y, abs=0.01)
    # bicubic x2 on this smooth, low-detail clip: far above the ~33 dB of natural photos
    assert 35.0 < report["mean"]["psnr_y"] < 45.0


def test_frames_are_converted_with_their_own_matrix(shared_data: Path) -> None:
    # flat 4:4:4 planes: R, G, B follow from the matrix alone (limited range, 8 bits)
    y, cb, cr = 110, 90, 200
    planes = tuple(np.full((4, 6), v, dtype=np.uint8) for v in (y, cb, cr))
    for matrix, (kr, kb) in ((ColorMatrix.BT709, (0.2126, 0.0722)), (ColorMatrix.BT470BG, (0.299, 0.114))):
        color = ColorDescription(matrix=matrix, range=ColorRange.LIMITED)
        frame = Frame(
            index=0, pts=0, time_base=Fraction(1, 25), pix_fmt="yuv444p", width=6, height=4,
            planes=planes, color=color,
        )  # fmt: skip
        luma, pb, pr = (y - 16) / 219, (cb - 128) / 224, (cr - 128) / 224
        r, b = luma + (2 - 2 * kr) * pr, luma + (2 - 2 * kb) * pb
        g = (luma - kr * r - kb * b) / (1 - kr - kb)
        expected = np.clip(np.floor(np.array([r, g, b]) * 255 + 0.5), 0, 255)
        got = frame_to_rgb(frame)
        assert got.shape == (4, 6, 3) and (got == expected).all(), (matrix, got[0, 0], expected)

    # the untagged 720p sample is BT.709 by the players' rule: nearer FFmpeg's 709 conversion than its 601
    clip = _sample(shared_data)
    _, ours = next(iter(clip_frames(clip, 1)))
    with av.open(str(clip)) as container:
        frame = next(container.decode(video=0))
        diffs = {
            cs: np.abs(
                frame.reformat(format="rgb24", src_colorspace=cs, src_color_range="MPEG")
                .to_ndarray()
                .astype(int)
                - ours
            ).mean()
            for cs in ("ITU709", "ITU601")
        }
    assert diffs["ITU709"] < 1.2 and diffs["ITU709"] < diffs["ITU601"] - 0.2, diffs


def test_non_video_file_gives_one_line_and_exit_1(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video\n" * 50)
    result = runner.invoke(app, ["eval", str(notes), "-s", "2"])
    line = _one_line_error(result.stderr)
    assert result.exit_code == 1 and line.startswith("vsr: error: ") and "notes.mp4" in line
    result = runner.invoke(app, ["eval", str(notes), "-s", "2", "--frames", "0"])
    assert result.exit_code == 2 and "--frames must be at least 1" in _one_line_error(result.stderr)
    result = runner.invoke(app, ["eval", str(tmp_path), "-s", "2", "--frames", "3"])
    assert result.exit_code == 2 and "--frames applies to a video clip" in _one_line_error(result.stderr)
