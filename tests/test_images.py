"""`vsr upscale` on still images and folders: pixels, grey, alpha, 16 bits, names, overwrite, errors."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from safetensors.torch import save_file
from typer.testing import CliRunner

import vsr
from vsr.cli import app
from vsr.errors import ConfigError, InputError, OutputError
from vsr.media.images import StillImage, read_image, upright, write_image
from vsr.models import RRDBNet, load_model
from vsr.ops.tiling import pad_to_multiple
from vsr.quality import bicubic_upscale, imresize, load_image, psnr, to_uint8

runner = CliRunner()


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


def _texture(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: detail for the resize, and no flat areas that hide errors."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 7 + y * 3 + 40 * c) % 256 for c in range(channels)], axis=-1).astype(np.float64)
    img = np.clip(base * 0.7 + rng.normal(0, 20, base.shape) + 30, 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bicubic_x2_of_a_set5_image_is_the_matlab_resize(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "images" / "eval" / "Set5" / "butterfly.png"
    if not src.is_file():
        pytest.skip(f"{src} not found (see ../shared/data/MANIFEST.md)")
    expected = bicubic_upscale(load_image(src), 2)  # float64 MATLAB imresize, rounded
    out = tmp_path / "big.png"
    summary = vsr.upscale_images(src, out, model="bicubic", scale=2, precision="fp32")
    got = np.asarray(Image.open(out))
    assert got.shape == expected.shape == (512, 512, 3)
    # fp32 against float64: only a rare rounding tie may differ, by one code
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert psnr(got, expected) > 60.0
    assert len(summary.images) == 1 and summary.images[0].output_size == (512, 512)
    # bf16 keeps 8 significant bits: near, not exact
    vsr.upscale_images(src, out, model="bicubic", scale=2, precision="bf16", overwrite=True)
    assert 35.0 < psnr(np.asarray(Image.open(out)), expected) < 60.0


def test_grey_stays_grey_and_rgba_keeps_its_alpha(tmp_path: Path) -> None:
    grey = _texture(23, 31, 1)
    rgba = np.dstack([_texture(23, 31, 3, seed=1), _texture(23, 31, 1, seed=2)])
    rgba[:5, :, 3] = 255  # an opaque band must stay exactly opaque
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    out = tmp_path / "out"
    vsr.upscale_images(tmp_path, out, model="bicubic", scale=2, precision="fp32")

    with Image.open(out / "grey.png") as im:
        assert im.mode == "L" and im.size == (62, 46)
        got_grey = np.asarray(im).astype(int)
    assert np.abs(got_grey - to_uint8(imresize(grey, (46, 62)))).max() <= 1

    with Image.open(out / "rgba.png") as im:
        assert im.mode == "RGBA" and im.size == (62, 46)
        got = np.asarray(im).astype(int)
    assert np.abs(got[..., :3] - bicubic_upscale(rgba[..., :3], 2)).max() <= 1
    assert np.abs(got[..., 3] - to_uint8(imresize(rgba[..., 3], (46, 62)))).max() <= 1
    assert (got[:8, :, 3] == 255).all()  # rows well inside the opaque band
    assert got[20:, :, 3].std() > 20  # the noisy alpha was resized, not replaced by a constant


def test_sixteen_bits_stay_sixteen_bits_where_the_format_can(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:21, 0:26]
    deep = np.stack([x * 2500 + y * 7, y * 3000 + 13 * x, (x * y * 97) % 60000], axis=-1)
    deep = np.clip(deep + rng.integers(0, 256, deep.shape), 0, 65535).astype(np.uint16)
    src = tmp_path / "deep.png"
    assert cv2.imwrite(str(src), deep[..., ::-1])  # OpenCV is BGR
    image = read_image(src)
    assert image.bits == 16 and np.array_equal(image.colour, deep)  # not Pillow's silent 8 bits

    vsr.upscale_images(src, tmp_path / "big.png", model="bicubic", scale=2, precision="fp32")
    got = cv2.imread(str(tmp_path / "big.png"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.shape == (42, 52, 3)
    expected = np.clip(np.floor(imresize(deep, (42, 52)) + 0.5), 0, 65535)
    # within a few 16-bit codes; 8 bits would be off by up to 128
    assert np.abs(got[..., ::-1].astype(np.float64) - expected).max() <= 4

    grey16 = (deep[..., 0] // 2 + 7).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.tif")
    result = vsr.upscale_images(
        tmp_path / "grey16.tif", tmp_path / "grey16_big.tif", model="bicubic", scale=2, precision="fp32"
    )
    with Image.open(tmp_path / "grey16_big.tif") as im:
        assert im.mode.startswith("I;16") and im.size == (52, 42)
        expected16 = np.clip(imresize(grey16, (42, 52)), 0, 65535)
        assert np.abs(np.asarray(im).astype(np.float64) - expected16).max() <= 4
    assert result.notes == ()

    # JPEG has no 16-bit samples: 8 bits, and the summary says so
    summary = vsr.upscale_images(src, tmp_path / "big.jpg", model="bicubic", scale=2, precision="fp32")
    assert Image.open(tmp_path / "big.jpg").mode == "RGB"
    assert any("JPEG has no 16-bit samples" in n for n in summary.notes)


def _tiny_rrdb_x2(path: Path) -> Path:
    torch.manual_seed(5)
    net = RRDBNet(3, 3, scale=2, num_feat=8, num_block=1, num_grow_ch=4).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.2, 0.2)
    save_file(net.state_dict(), path)
    return path


def test_odd_sized_image_with_a_size_multiple_model_untiled_and_tiled(tmp_path: Path) -> None:
    checkpoint = _tiny_rrdb_x2(tmp_path / "rrdb_x2.safetensors")
    loaded = load_model(checkpoint)
    assert loaded.descriptor.size_multiple == 2  # x2 RRDB pixel-unshuffles its input
    pixels = _texture(29, 37)
    src = tmp_path / "odd.png"
    Image.fromarray(pixels).save(src)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0
    padded, _ = pad_to_multiple(x, 2)
    with torch.no_grad():
        y = loaded.module(padded)[0, :, :58, :74].clamp(0, 1)
    expected = to_uint8(y.permute(1, 2, 0).double().numpy() * 255.0)

    for name, tile in (("whole.png", 0), ("tiled.png", 16)):
        vsr.upscale_images(src, tmp_path / name, model=str(checkpoint), precision="fp32", tile=tile)
        got = np.asarray(Image.open(tmp_path / name)).astype(int)
        assert got.shape == (58, 74, 3), name
        assert np.abs(got - expected).max() <= 1, name


def test_folder_in_folder_out_same_names_and_formats(tmp_path: Path) -> None:
    src = tmp_path / "frames"
    (src / "nested").mkdir(parents=True)
    Image.fromarray(_texture(16, 20)).save(src / "b.png")
    Image.fromarray(_texture(18, 14, seed=4)).save(src / "a.jpg", quality=95)
    Image.fromarray(_texture(12, 12, seed=5)).save(src / "c.BMP")
    Image.fromarray(_texture(12, 12, seed=6)).save(src / "nested" / "skipped.png")  # not recursed into
    (src / "notes.txt").write_text("not an image\n")
    out = tmp_path / "new" / "big"  # created, parents included
    result = runner.invoke(app, ["upscale", str(src), str(out), "-m", "bicubic", "-s", "2", "--crf", "18"])
    assert result.exit_code == 0, result.stderr
    assert _files(out) == ["a.jpg", "b.png", "c.BMP"]
    sizes = {name: Image.open(out / name).size for name in _files(out)}
    assert sizes == {"a.jpg": (28, 36), "b.png": (40, 32), "c.BMP": (24, 24)}
    assert [Image.open(out / n).format for n in _files(out)] == ["JPEG", "PNG", "BMP"]
    assert "video-only option(s) ignored for images: --crf" in result.stderr
    assert "[3/3] c.BMP 12x12 -> 24x24" in result.stderr
    assert f"wrote {out} (3 images)" in result.stderr and "s per image" in result.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["upscale", str(empty), str(tmp_path / "o"), "-m", "bicubic"])
    assert result.exit_code == 1 and "no images" in _one_line_error(result.stderr)


def test_existing_output_is_refused_without_overwrite(tmp_path: Path) -> None:
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(_texture(10, 12)).save(src)
    out.write_bytes(b"keep me")
    result = runner.invoke(app, ["upscale", str(src), str(out), "-m", "bicubic", "-s", "2"])
    line = _one_line_error(result.stderr)
    assert (
        result.exit_code == 2 and line == f"vsr: error: output {out} exists; pass --overwrite to replace it"
    )
    assert out.read_bytes() == b"keep me"
    result = runner.invoke(app, ["upscale", str(src), str(out), "-m", "bicubic", "-s", "2", "-y", "-q"])
    assert result.exit_code == 0, result.stderr
    assert Image.open(out).size == (24, 20)

    folder_out = tmp_path / "outs"
    folder_out.mkdir()
    (folder_out / "in.png").write_bytes(b"keep me too")
    result = runner.invoke(app, ["upscale", str(tmp_path), str(folder_out), "-m", "bicubic", "-s", "2"])
    assert result.exit_code == 2 and "in.png exists" in _one_line_error(result.stderr)
    assert (folder_out / "in.png").read_bytes() == b"keep me too"
    result = runner.invoke(app, ["upscale", str(src), str(tmp_path / "out.mp4"), "-m", "bicubic"])
    assert result.exit_code == 2 and "needs an image output" in _one_line_error(result.stderr)


def test_unreadable_image_gives_one_line_exit_1_and_no_partial_file(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(_texture(16, 16)).save(folder / "a.png")
    (folder / "b.png").write_bytes((folder / "a.png").read_bytes()[:60])  # a PNG header, then nothing
    result = runner.invoke(
        app, ["upscale", str(folder / "b.png"), str(tmp_path / "out.png"), "-m", "bicubic", "-s", "2"]
    )
    line = _one_line_error(result.stderr)
    assert result.exit_code == 1 and line.startswith("vsr: error: cannot read image") and "b.png" in line
    assert _files(tmp_path) == ["imgs"]  # neither out.png nor out.partial.png

    out = tmp_path / "out"
    result = runner.invoke(app, ["upscale", str(folder), str(out), "-m", "bicubic", "-s", "2", "-q"])
    line = _one_line_error(result.stderr)
    assert result.exit_code == 1 and "b.png" in line and "1 of 2 images were written before it" in line
    assert _files(out) == ["a.png"]  # the complete one; nothing half-written beside it


def test_a_failed_write_leaves_neither_the_final_nor_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail_midway(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", fail_midway)
    with pytest.raises(OutputError, match="No space left on device"):
        write_image(tmp_path / "x.png", StillImage(colour=_texture(8, 8)))
    assert _files(tmp_path) == []


def test_exif_orientation_is_applied_before_upscaling(tmp_path: Path) -> None:
    pixels = _texture(10, 16)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif)
    vsr.upscale_images(
        tmp_path / "turned.png", tmp_path / "big.png", model="bicubic", scale=2, precision="fp32"
    )
    got = np.asarray(Image.open(tmp_path / "big.png")).astype(int)
    assert got.shape == (32, 20, 3)
    assert np.abs(got - bicubic_upscale(np.rot90(pixels, -1), 2)).max() <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_arrays_as_pillow_turns_images(orientation: int) -> None:
    pixels = _texture(5, 7)
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(upright(pixels, orientation), expected)


def test_library_errors_and_the_video_entry_point_redirects(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        read_image(tmp_path / "missing.png")
    Image.fromarray(_texture(8, 8)).save(tmp_path / "in.png")
    with pytest.raises(ConfigError, match=r"use vsr\.upscale_images"):
        vsr.upscale(tmp_path / "in.png", tmp_path / "out.png", model="bicubic")
    for wrong in ("out.png", "out.mp4"):
        with pytest.raises(ConfigError, match="needs an output folder"):
            vsr.upscale_images(tmp_path, tmp_path / wrong, model="bicubic")
    assert _files(tmp_path) == ["in.png"]


def test_json_summary_of_an_image_run(tmp_path: Path) -> None:
    Image.fromarray(_texture(9, 11)).save(tmp_path / "in.webp", lossless=True)
    report = tmp_path / "summary.json"
    result = runner.invoke(
        app,
        [
            *("upscale", str(tmp_path / "in.webp"), str(tmp_path / "out.webp")),
            *("-m", "bicubic", "-s", "2", "--json", str(report)),
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["image_count"] == 1 and data["images"][0]["output_size"] == [22, 18]
    assert data["per_image_s"] == pytest.approx(data["wall_s"], abs=1e-3)
    assert Image.open(tmp_path / "out.webp").format == "WEBP"


def test_images_of_two_sizes_through_onnxruntime_match_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    monkeypatch.chdir(tmp_path)  # the onnxruntime backend caches its export under ./engines
    checkpoint = _tiny_rrdb_x2(tmp_path / "rrdb_x2.safetensors")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_texture(24, 40, seed=1)).save(src / "a.png")
    Image.fromarray(_texture(36, 20, seed=2)).save(src / "b.png")
    for backend in ("torch", "onnxruntime"):
        vsr.upscale_images(src, tmp_path / backend, model=str(checkpoint), precision="fp32", backend=backend)
    assert len(list((tmp_path / "engines").glob("*.onnx"))) == 1  # one export serves both sizes
    for name, size in (("a.png", (48, 80, 3)), ("b.png", (72, 40, 3))):
        ours = np.asarray(Image.open(tmp_path / "onnxruntime" / name)).astype(int)
        reference = np.asarray(Image.open(tmp_path / "torch" / name)).astype(int)
        assert ours.shape == size
        assert np.abs(ours - reference).max() <= 1, name


@pytest.mark.parametrize("backend", ["tensorrt", "tensorrt-rtx"])
def test_engine_backends_are_refused_for_images_with_the_reason(tmp_path: Path, backend: str) -> None:
    Image.fromarray(_texture(8, 8)).save(tmp_path / "in.png")
    result = runner.invoke(
        app, ["upscale", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--backend", backend]
    )
    assert result.exit_code == 2
    assert _one_line_error(result.stderr) == (
        f"vsr: error: --backend {backend} is for videos (its engines are built for one frame size); "
        "images run with --backend torch or onnxruntime"
    )
    assert _files(tmp_path) == ["in.png"]


def _animation(path: Path, frames: int = 6) -> Path:
    """An animated PNG or WebP of ``frames`` different frames, 100 ms each."""
    pictures = [Image.fromarray(_texture(24, 32, seed=n)) for n in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    return path


def test_an_animated_png_to_a_video_keeps_every_frame_and_its_time(tmp_path: Path) -> None:
    src = _animation(tmp_path / "anim.png")
    out = tmp_path / "anim.mp4"
    result = runner.invoke(app, ["upscale", str(src), str(out), "-m", "bicubic", "-s", "2", "-q"])
    assert result.exit_code == 0, result.stderr
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
    assert [round(f.time, 3) for f in frames] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert (frames[0].width, frames[0].height) == (64, 48)


def test_an_animation_to_one_image_is_refused_with_the_way_that_works(tmp_path: Path) -> None:
    src = _animation(tmp_path / "anim.png")
    result = runner.invoke(app, ["upscale", str(src), str(tmp_path / "big.png"), "-m", "bicubic"])
    assert result.exit_code == 2 and _one_line_error(result.stderr) == (
        f"vsr: error: {src} is animated (6 frames); give a video output (.mp4, .mkv, .mov) to upscale every frame"
    )
    webp = _animation(tmp_path / "anim.webp")
    for out in ("big.png", "big.mp4"):
        result = runner.invoke(app, ["upscale", str(webp), str(tmp_path / out), "-m", "bicubic"])
        assert result.exit_code == 1 and _one_line_error(result.stderr) == (
            f"vsr: error: {webp} is an animated WebP (6 frames), whose animation FFmpeg cannot decode; "
            "convert it to a video or an animated PNG first"
        )
    assert not list(tmp_path.glob("big*"))


def test_a_folders_animated_image_says_only_its_first_frame_is_upscaled(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _animation(folder / "anim.png")
    Image.fromarray(_texture(10, 12)).save(folder / "still.png")
    summary = vsr.upscale_images(folder, tmp_path / "out", model="bicubic", scale=2)
    assert summary.notes == ("anim.png is animated (6 frames); only its first frame is upscaled",)
    assert np.asarray(Image.open(tmp_path / "out" / "anim.png")).shape == (48, 64, 3)


def test_probe_of_an_image_says_what_upscale_does_with_it(tmp_path: Path) -> None:
    src = tmp_path / "logo.png"
    Image.fromarray(_texture(20, 30, channels=4)).save(src)
    result = runner.invoke(app, ["probe", str(src), "-m", "bicubic", "-s", "4"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1:3] == ["image:     30x20 RGB (8-bit), alpha", "plan:"]
    assert lines[3].startswith("  model:     bicubic") and lines[4] == "  backend:   torch on cpu (bf16)"
    assert lines[5] == "  resize:    30x20 -> model x4 -> 120x80"
    assert not [line for line in lines if "encoder" in line or "libx264" in line]  # no video plan
