"""Pictures a person looks at after training: image grids, loss curves, confusion matrices.

Drawn with Pillow so training needs no plotting library.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


LABEL_WIDTH = 70  # pixels left of a grid for its row labels


def grid_cell(r: int, c: int, size: tuple[int, int], *, pad: int = 2, labelled: bool = False) -> tuple[int, int]:
    """(x, y) of the top-left pixel of cell (row r, column c) of an :func:`image_grid` of (H, W) images."""
    h, w = size
    return (LABEL_WIDTH if labelled else 0) + pad + c * (w + pad), pad + r * (h + pad)


def image_grid(images: np.ndarray, rows: int, cols: int, *, pad: int = 2, row_labels: list[str] | None = None) -> Image.Image:
    """(rows*cols, H, W) uint8 -> one grey grid image, row-major, with optional row labels."""
    n, h, w = images.shape
    assert n == rows * cols, f"{n} images do not fill a {rows}x{cols} grid"
    left = LABEL_WIDTH if row_labels else 0
    grid = Image.new("L", (left + cols * (w + pad) + pad, rows * (h + pad) + pad), 255)
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        r, c = divmod(i, cols)
        grid.paste(Image.fromarray(images[i]), grid_cell(r, c, (h, w), pad=pad, labelled=bool(row_labels)))
    for r, label in enumerate(row_labels or []):
        draw.text((4, pad + r * (h + pad) + h // 2 - 5), label, fill=0)
    return grid


def line_chart(series: dict[str, list[float]], path: str | Path, *, title: str, size: tuple[int, int] = (800, 400)) -> None:
    """Plot named series (same x = index) into a PNG with a legend."""
    width, height = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    margin = 50
    values = [v for s in series.values() for v in s if np.isfinite(v)]
    if not values:
        img.save(path)
        return
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1
    n = max(len(s) for s in series.values())
    draw.rectangle([margin, margin, width - 10, height - margin], outline="black")
    draw.text((margin, 10), f"{title}   (y: {lo:.3g} .. {hi:.3g}, x: 0 .. {n - 1})", fill="black")
    for k, (name, s) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        pts = [
            (margin + (width - 10 - margin) * i / max(n - 1, 1), height - margin - (height - 2 * margin) * (v - lo) / (hi - lo))
            for i, v in enumerate(s) if np.isfinite(v)
        ]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        draw.text((margin + 10 + 150 * k, height - margin + 15), name, fill=colour)
    img.save(path)


def confusion_matrix_image(matrix: np.ndarray, labels: list[str], path: str | Path, *, title: str) -> None:
    """Row-normalised confusion matrix (rows = true, columns = predicted) as a PNG."""
    k = len(labels)
    cell, left, top = 56, 90, 60
    img = Image.new("RGB", (left + k * cell + 10, top + k * cell + 10), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 10), title, fill="black")
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i in range(k):
        draw.text((5, top + i * cell + cell // 2 - 5), labels[i][:11], fill="black")
        draw.text((left + i * cell + 2, top - 15), labels[i][:8], fill="black")
        for j in range(k):
            shade = int(255 * (1 - norm[i, j]))
            box = [left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1]
            draw.rectangle(box, fill=(shade, shade, 255))
            draw.text((box[0] + 12, box[1] + 22), f"{norm[i, j]:.2f}", fill="black" if shade > 120 else "white")
    img.save(path)


def reliability_diagram(curves: dict[str, list[tuple[float, float, int]]], path: str | Path, *, title: str,
                        size: tuple[int, int] = (560, 520)) -> None:
    """Accuracy against confidence, one line per named set of bins ((mean confidence, accuracy,
    clips) per bin, ``ml.calibration.reliability``), over the diagonal a calibrated model follows.
    A bin's dot grows with its share of the clips; empty bins are left out."""
    width, height = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = 50, 40, width - 20, height - 90

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (right - left) * x, bottom - (bottom - top) * y

    draw.text((10, 10), title, fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    for t in range(0, 11, 2):
        draw.text((at(t / 10, 0)[0] - 8, bottom + 5), f"{t / 10:.1f}", fill="black")
        draw.text((left - 30, at(0, t / 10)[1] - 5), f"{t / 10:.1f}", fill="black")
    draw.line([at(0, 0), at(1, 1)], fill=(160, 160, 160), width=1)
    draw.text((left + 5, bottom + 22), "x: mean confidence of the bin, y: accuracy", fill="black")
    for k, (name, bins) in enumerate(curves.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        total = max(sum(n for _, _, n in bins), 1)
        pts = [at(c, a) for c, a, n in bins if n]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for (c, a, n), (x, y) in zip([b for b in bins if b[2]], pts, strict=True):
            r = 2 + 10 * (n / total) ** 0.5
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2)
        draw.text((left + 5 + 95 * (k % 5), bottom + 42 + 16 * (k // 5)), name, fill=colour)
    img.save(path)
