"""Flat-colour grid drawing and reading shared by every task.

Each cell is ``cell_px`` pixels square. A cell's *kind* (an index into a palette) is drawn as a flat
fill; reading takes the mean colour of the cell's central square and picks the nearest palette
colour, which survives Gaussian pixel noise and a small blur.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter

Colour = tuple[float, float, float]


def to_array(image: Image.Image, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """RGB image -> float array (H, W, 3) in [0, 1]; checks the mode and, if given, the size."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image, got {type(image).__name__}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    if expected_hw is not None and array.shape[:2] != tuple(expected_hw):
        raise ValueError(f"image is {array.shape[1]}x{array.shape[0]} px, expected {expected_hw[1]}x{expected_hw[0]}")
    return array


def to_image(array: np.ndarray) -> Image.Image:
    """Float array (H, W, 3) in [0, 1] -> RGB image."""
    return Image.fromarray((np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def paint_cells(kinds: np.ndarray, palette: Sequence[Colour], cell_px: int) -> np.ndarray:
    """(rows, cols) int kinds -> (rows*cell_px, cols*cell_px, 3) float image."""
    colours = np.asarray(palette, dtype=np.float32)  # (K, 3)
    small = colours[kinds]  # (rows, cols, 3)
    return np.repeat(np.repeat(small, cell_px, axis=0), cell_px, axis=1)


def cell_means(array: np.ndarray, rows: int, cols: int, cell_px: int, margin: int) -> np.ndarray:
    """Mean colour of each cell's centre, ignoring ``margin`` px on every side -> (rows, cols, 3)."""
    blocks = array[: rows * cell_px, : cols * cell_px].reshape(rows, cell_px, cols, cell_px, 3)
    inner = blocks[:, margin : cell_px - margin, :, margin : cell_px - margin, :]
    return inner.mean(axis=(1, 3))


def nearest_kind(means: np.ndarray, palette: Sequence[Colour]) -> np.ndarray:
    """(..., 3) colours -> (...) index of the nearest palette colour."""
    colours = np.asarray(palette, dtype=np.float32)  # (K, 3)
    distance = ((means[..., None, :] - colours) ** 2).sum(-1)  # (..., K)
    return distance.argmin(-1)


def grid_size_from_image(image: Image.Image, cell_px: int) -> int:
    """Side (in cells) of a square grid image; raises on non-square or non-multiple sizes."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image, got {type(image).__name__}")
    width, height = image.size
    if width != height or width % cell_px:
        raise ValueError(f"expected a square image with side a multiple of {cell_px} px, got {width}x{height}")
    return width // cell_px


def perturb(image: Image.Image, rng: np.random.Generator, sigma: float = 0.1, blur: float = 1.0) -> Image.Image:
    """The noise model the readers are tested against: Gaussian blur of radius ``blur`` px, then
    i.i.d. Gaussian pixel noise of std ``sigma`` (on the [0, 1] scale), clipped."""
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    array = to_array(image)
    array = array + rng.normal(0.0, sigma, size=array.shape).astype(np.float32)
    return to_image(array)


def min_palette_distance(palette: Sequence[Colour]) -> float:
    colours = np.asarray(palette, dtype=np.float32)
    distance = np.sqrt(((colours[:, None] - colours[None]) ** 2).sum(-1))
    return float(distance[~np.eye(len(colours), dtype=bool)].min())


NEIGHBOURS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def move(cell: tuple[int, int], direction: str) -> tuple[int, int]:
    dr, dc = NEIGHBOURS[direction]
    return (cell[0] + dr, cell[1] + dc)


def direction_between(a: tuple[int, int], b: tuple[int, int]) -> str:
    for name, (dr, dc) in NEIGHBOURS.items():
        if (a[0] + dr, a[1] + dc) == tuple(b):
            return name
    raise ValueError(f"cells {a} and {b} are not neighbours")
