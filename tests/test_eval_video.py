"""`vsr eval CLIP`: a video's frames scored with the image protocol and the flicker metric, a row a
Restore configuration; the degraded input (noise, H.264) and the flicker crops."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from vsr.cli import app
from vsr.media import ColorDescription, ColorMatrix, ColorRange, Frame
from vsr.models.denoise import FFDNet
from vsr.quality import clip_frames, evaluate_folder, frame_to_rgb
from vsr.quality.clip_degrade import h264_round_trip
from vsr.quality.flicker import flicker
from vsr.quality.flicker_crops import CropsLayout
from vsr.quality.metrics import psnr_y
from vsr.quality.protocol import degrade, modcrop

from streams import frames_of, rgb_of, stage, texture, translating, u8, write_lossless

runner = CliRunner()


def _sample(shared_data: Path) -> Path:
    path = shared_data / "video" / "sample_1080x720_aac.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found (see ../shared/data/MANIFEST.md)")
    return path


def _foreman(shared_data: Path) -> Path:
    path = shared_data / "video" / "foreman_cif.264"
    if not path.is_file():
        pytest.skip(f"{path} not found (see ../shared/data/MANIFEST.md)")
    return path


def _eval_json(*args: str) -> dict:
    result = runner.invoke(app, ["eval", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


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
    assert (report["frames"], report["width"], report["height"]) == (5, 1080, 720)
    [config] = report["configurations"]
    assert config["config"] == "temporal off" and config["temporal"] is False
    assert [r["name"] for r in config["frames"]] == [f"frame {i}" for i in range(5)]
    assert "bicubic x2 on 5 frames, temporal off: PSNR-Y" in result.stderr

    # the same frames, written losslessly, through the image folder's code (its bicubic is the
    # protocol's float64 imresize, the clip's the Restore stage's module: a level apart at most)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, rgb in clip_frames(clip, 5):
        Image.fromarray(rgb).save(folder / f"{index:03d}.png")
    as_images = evaluate_folder(folder, "bicubic", scale=2)
    assert len(as_images.rows) == 5
    for frame, image in zip(config["frames"], as_images.rows, strict=True):
        assert frame["psnr_y"] == pytest.approx(image.psnr_y, abs=0.01)
        assert frame["ssim_y"] == pytest.approx(image.ssim_y, abs=1e-4)
    assert config["psnr_y"] == pytest.approx(as_images.mean_psnr_y, abs=0.01)
    # bicubic x2 on this smooth, low-detail clip: far above the ~33 dB of natural photos
    assert 35.0 < config["psnr_y"] < 45.0


def test_the_flicker_columns_are_the_flicker_metric_of_the_restored_frames(shared_data: Path) -> None:
    clip = _foreman(shared_data)
    report = _eval_json(str(clip), "-s", "2", "--frames", "4")
    got = report["configurations"][0]["flicker"]
    # by hand: the clip's frames, the protocol's LR, a Restore stage of our own, vsr.quality.flicker
    truths = [modcrop(rgb, 2) for _, rgb in clip_frames(clip, 4)]
    h, w = truths[0].shape[:2]
    outputs = rgb_of(stage((w // 2, h // 2))(frames_of([degrade(t, 2) for t in truths])))
    expected = flicker(outputs, truths)
    assert got["pairs"] == expected.pairs == 3
    assert got["warping_error"] == pytest.approx(expected.output, rel=1e-9)
    assert got["warping_error_truth"] == pytest.approx(expected.ground_truth, rel=1e-9)
    assert got["ratio"] == pytest.approx(expected.output / expected.ground_truth, rel=1e-9)
    assert got["valid_fraction"] == pytest.approx(expected.valid_fraction, rel=1e-9)
    # foreman moves: the truth's own error is well above the rounding floor, and bicubic is steady
    assert expected.ground_truth > 1.0 and 0.3 < got["ratio"] < 1.2
    # a different frame order would give other numbers: the pairing is what is being checked
    shuffled = flicker([outputs[i] for i in (0, 2, 1, 3)], [truths[i] for i in (0, 2, 1, 3)])
    assert abs(shuffled.output - expected.output) > 0.1

    table = runner.invoke(app, ["eval", str(clip), "-s", "2", "--frames", "4"]).stdout
    row = next(line for line in table.splitlines() if line.startswith("| temporal off |"))
    assert f"| {expected.output:.3f} | {expected.ground_truth:.3f} | {got['ratio']:.2f} |" in row


def test_temporal_on_removes_the_flicker_of_noisy_input_and_off_is_the_plain_run(shared_data: Path) -> None:
    clip = _foreman(shared_data)
    args = [str(clip), "-s", "2", "--frames", "6", "--noise", "10"]
    strengths = ["--temporal-strength", "0.5", "--temporal-strength", "0.8"]
    report = _eval_json(*args, "--temporal", "off", "--temporal", "on", *strengths)
    off, on, strong = report["configurations"]
    assert [c["config"] for c in report["configurations"]] == [
        "temporal off", "temporal on, strength 0.5", "temporal on, strength 0.8"
    ]  # fmt: skip
    assert "Gaussian noise sigma 10" in report["input"]
    # fresh noise in every LR frame: bicubic of it flickers far beyond the truth's own motion error
    assert off["flicker"]["ratio"] > 3.0
    # blending the aligned previous output averages the noise: less flicker and a better picture,
    # and the more of the past it keeps, the less it flickers
    assert on["flicker"]["warping_error"] < 0.6 * off["flicker"]["warping_error"]
    assert strong["flicker"]["warping_error"] < 0.8 * on["flicker"]["warping_error"]
    assert on["psnr_y"] > off["psnr_y"] + 0.5
    assert on["flicker"]["warping_error_truth"] == off["flicker"]["warping_error_truth"]
    # the off row is exactly what a run without --temporal gives (the same noise, the same stage)
    plain = _eval_json(*args)["configurations"][0]
    assert plain["psnr_y"] == off["psnr_y"] and plain["flicker"] == off["flicker"]
    # and without the noise the same clip does not flicker: the noise was what made it
    clean = _eval_json(str(clip), "-s", "2", "--frames", "6")["configurations"][0]
    assert clean["flicker"]["ratio"] < 1.2 and clean["psnr_y"] > off["psnr_y"] + 2


def test_denoise_rows_run_the_denoiser_at_the_estimated_sigma(shared_data: Path, tmp_path: Path) -> None:
    clip = _foreman(shared_data)
    torch.manual_seed(0)
    net = FFDNet(num_feat=8, depth=3)
    with torch.no_grad():
        for p in net.parameters():  # the last conv starts at zero (the identity): make it matter
            p.uniform_(-0.2, 0.2)
    save_file(net.state_dict(), tmp_path / "tiny_denoiser.safetensors")
    report = _eval_json(
        str(clip), "-s", "2", "--frames", "3", "--noise", "20", "--denoise", "off", "--denoise", "auto",
        "--denoiser", str(tmp_path / "tiny_denoiser.safetensors"),
    )  # fmt: skip
    off, auto = report["configurations"]
    assert (off["config"], auto["config"]) == ("temporal off, denoise off", "temporal off, denoise auto")
    assert (off["denoise"], auto["denoise"]) == (None, "auto")
    assert abs(auto["psnr_y"] - off["psnr_y"]) > 0.5  # the (random) denoiser did run
    [note] = report["notes"]
    assert note.startswith("temporal off, denoise auto: denoise auto: noise sigma ")
    # one scene, one estimate: of the noise --noise added (the bicubic LR of foreman is smooth)
    estimate = float(note.split("noise sigma ")[1].split(" ")[0])
    assert estimate == pytest.approx(20.0, rel=0.2)


def test_each_row_reports_its_restore_time_without_the_warm_up_frame(shared_data: Path) -> None:
    clip = _foreman(shared_data)
    args = [str(clip), "-s", "2", "--noise", "15", "--denoise", "off", "--denoise", "25"]
    report = _eval_json(*args, "--frames", "3")
    off, on = report["configurations"]
    # the built-in denoiser (~325 kFLOP a pixel) costs far more than the bicubic x2 "model" (5-10x
    # on an idle machine; 2x leaves room for a busy one, where the small bicubic times swell most)
    assert 0 < 2 * off["restore_ms_per_frame"] < on["restore_ms_per_frame"] < 60_000
    table = runner.invoke(app, ["eval", *args, "--frames", "3"]).stdout
    row = next(line for line in table.splitlines() if line.startswith("| temporal off, denoise 25 |"))
    assert "| Restore ms/frame |" in table
    cell = row.split("|")[-2].strip()  # this run's own time: the same order, not the same figure
    assert re.fullmatch(r"\d+\.\d", cell) and float(cell) > 5 * off["restore_ms_per_frame"], row
    # one frame is only the warm-up: no time to report
    [alone, _] = _eval_json(*args, "--frames", "1")["configurations"]
    assert alone["restore_ms_per_frame"] is None


def test_h264_round_trip_keeps_every_frame_in_order_and_costs_quality_by_bitrate() -> None:
    clip = [u8(f) for f in translating(8, (45, 63), (1, 1))]  # odd sides: padded for 4:2:0
    clip[5] = u8(texture(45, 63, seed=9))  # a cut, so that frames differ by more than a shift
    results = {}
    for rate in (5_000, 100_000, 2_000_000):
        out = list(h264_round_trip(iter(clip), rate))
        assert len(out) == 8 and all(o.shape == (45, 63, 3) and o.dtype == np.uint8 for o in out)
        # luma: 4:2:0 halves the chroma of this colour texture whatever the rate
        results[rate] = np.mean([psnr_y(o, c, crop=0) for o, c in zip(out, clip, strict=True)])
        if rate == 2_000_000:  # near-lossless: each frame that comes back is nearest its own input
            nearest = [int(np.argmin([np.abs(o.astype(int) - c).mean() for c in clip])) for o in out]
            assert nearest == list(range(8))
    assert results[2_000_000] > 55.0 and results[2_000_000] - 5 > results[100_000] > results[5_000] + 10, (
        results
    )


def test_h264_round_trip_is_the_same_every_time() -> None:
    # libx264's mbtree gave a different stream now and then for the same frames in one process
    rng = np.random.default_rng(3)
    clip = [u8(f + rng.normal(0, 15, f.shape)) for f in translating(20, (144, 192), (2, 1))]
    first = list(h264_round_trip(iter(clip), 100_000, Fraction(10)))
    for _ in range(4):
        again = list(h264_round_trip(iter(clip), 100_000, Fraction(10)))
        assert all((a == b).all() for a, b in zip(first, again, strict=True))


def test_the_crops_picture_has_a_panel_per_row_and_frame_and_the_truths_own_pixels(
    shared_data: Path, tmp_path: Path
) -> None:
    clip = _foreman(shared_data)
    args = [str(clip), "-s", "2", "--frames", "6", "--noise", "10", "--temporal", "off", "--temporal", "on"]
    report = _eval_json(*args, "--crops", str(tmp_path / "crops"))
    info = report["crops"]
    assert info["path"] == str(tmp_path / "crops" / "foreman_cif_flicker.png")
    frames, size, zoom = info["frames"], info["size"], info["zoom"]
    assert size == 64 and len(frames) == 4 and frames == list(range(frames[0], frames[0] + 4))
    assert frames[0] >= 1  # every column's error needs the frame before it
    picture = np.asarray(Image.open(info["path"]).convert("RGB"))
    layout = CropsLayout(rows=6, columns=4, panel=size * zoom)  # off, on, truth; their errors
    assert picture.shape == (layout.size[1], layout.size[0], 3)

    truths = dict(clip_frames(clip, 6))
    x, y = info["x"], info["y"]
    for c, index in enumerate(frames):
        gt = modcrop(truths[index], 2)[y : y + size, x : x + size].repeat(zoom, 0).repeat(zoom, 1)
        px, py = layout.origin(2, c)
        assert (picture[py : py + size * zoom, px : px + size * zoom] == gt).all(), index

    # the region was picked where temporal on removes flicker: its error panels are darker there
    def panel(row: int, c: int) -> np.ndarray:
        px, py = layout.origin(row, c)
        return picture[py : py + size * zoom, px : px + size * zoom].astype(float)

    assert sum(panel(4, c).mean() for c in range(4)) < 0.8 * sum(panel(3, c).mean() for c in range(4))
    assert any((panel(0, c) != panel(1, c)).any() for c in range(4))  # off and on differ


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temporal", "maybe"], "--temporal must be off or on, got 'maybe'"),
        (["--temporal", "on", "--temporal-strength", "1.5"], "--temporal-strength must be in [0, 1]"),
        (["--temporal-strength", "0.3"], "--temporal-strength applies to --temporal on"),
        (["--denoise", "loud", "--denoiser", "x.pth"], "--denoise must be off, auto or a noise sigma"),
        (["--denoiser", "x.pth"], "--denoiser is given but --denoise is off"),
        (["--h264", "fast"], "--h264 must be a bitrate such as 300k"),
        (["--h264", "0.5k"], "--h264 must be at least 1k bits per second"),
        (["--noise", "-3"], "--noise must be a sigma in [0, 255]"),
        (["--crops", "out", "--frames", "1"], "--crops shows frames next to each other"),
        (["-m", "none"], "-m none is the noisy-input baseline of --noise on image folders"),
    ],
)
def test_bad_clip_options_give_one_line_and_exit_2(shared_data: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["eval", str(_foreman(shared_data)), "-s", "2", *args])
    assert result.exit_code == 2 and message in _one_line_error(result.stderr), result.output


def test_clip_options_on_a_folder_are_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(tmp_path), "-s", "2", "--temporal", "on", "--h264", "300k"])
    line = _one_line_error(result.stderr)
    assert result.exit_code == 2 and "--temporal, --h264 apply to a video clip" in line


def test_reuse_rows_count_what_was_reused_and_score_as_every_frame(tmp_path: Path) -> None:
    # a fixed camera: a textured background, a duplicated first frame, then a square moving across
    background = texture(320, 512, seed=21)
    images = []
    for t in [0, 0, 1, 2, 3, 4]:
        img = background.copy()
        img[100:120, 60 + 6 * t : 80 + 6 * t] = 245.0
        images.append(u8(img))
    chroma = np.full((160, 256), 128, np.uint8)
    clip = write_lossless(tmp_path / "cam.mp4", [(img[..., 0], chroma, chroma) for img in images])
    report = _eval_json(str(clip), "-m", "bicubic", "-s", "2", "--reuse-still", "off", "--reuse-still", "on")
    off, on = report["configurations"]
    assert [off["config"], on["config"]] == ["temporal off, reuse off", "temporal off, reuse on"]
    assert [off["reuse_still"], on["reuse_still"]] == [False, True]
    # bicubic over windows is exact: reusing changes no score
    assert on["psnr_y"] == pytest.approx(off["psnr_y"], abs=1e-9)
    notes = "\n".join(report["notes"])
    assert "reuse on: still-frame reuse: 1 of 6 frames took the previous output" in notes
    assert "reuse on: region reuse: 4 frames restored in part" in notes
