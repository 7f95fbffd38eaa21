"""`vsr bench --plot`: a horizontal bar chart of each stage's fps, drawn with Pillow."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["PLOT_WIDTH", "plot_height", "write_plot"]

PLOT_WIDTH = 800
_ROW, _TOP, _LABEL_W, _VALUE_W = 36, 48, 120, 110
_BAR, _SLOWEST, _E2E = (70, 130, 180), (200, 70, 60), (60, 150, 90)


def plot_height(rows: int) -> int:
    return _TOP + rows * _ROW + 16


def write_plot(path: str | Path, stage_fps: dict[str, float], end_to_end_fps: float, title: str) -> Path:
    """Bars for every stage (the slowest in red) and one for the end-to-end run (green)."""
    rows = [*stage_fps.items(), ("end-to-end", end_to_end_fps)]
    image = Image.new("RGB", (PLOT_WIDTH, plot_height(len(rows))), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((10, 14), title, fill="black", font=font)
    top = max(fps for _, fps in rows) or 1.0
    slowest = min(stage_fps, key=lambda k: stage_fps[k]) if stage_fps else ""
    span = PLOT_WIDTH - _LABEL_W - _VALUE_W
    for i, (name, fps) in enumerate(rows):
        y = _TOP + i * _ROW
        colour = _E2E if name == "end-to-end" else _SLOWEST if name == slowest else _BAR
        draw.text((10, y + 8), name, fill="black", font=font)
        # at least 2 px, so a stage far slower than the others still shows as a bar
        draw.rectangle(
            (_LABEL_W, y + 4, _LABEL_W + max(2, round(span * fps / top)), y + _ROW - 8), fill=colour
        )
        draw.text((PLOT_WIDTH - _VALUE_W + 10, y + 8), f"{fps:.1f} fps", fill="black", font=font)
    out = Path(path)
    image.save(out)
    return out
