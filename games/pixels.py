"""Pixel-art drawing on (H, W, 3) uint8 numpy frames: rectangles, circles, a 5x7 font, a pointer.

Everything clips at the frame edges and draws in place. No pygame, so games render headless.
"""

from __future__ import annotations

import numpy as np

Colour = tuple[int, int, int]


def fill_rect(img: np.ndarray, x: int, y: int, w: int, h: int, colour: Colour) -> None:
    """Fill the rectangle with top-left ``(x, y)`` and size ``(w, h)`` pixels."""
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 < x1 and y0 < y1:
        img[y0:y1, x0:x1] = colour


def outline_rect(img: np.ndarray, x: int, y: int, w: int, h: int, colour: Colour, thickness: int = 1) -> None:
    """Draw a rectangle outline ``thickness`` pixels wide, inside the box."""
    t = thickness
    fill_rect(img, x, y, w, t, colour)
    fill_rect(img, x, y + h - t, w, t, colour)
    fill_rect(img, x, y, t, h, colour)
    fill_rect(img, x + w - t, y, t, h, colour)


def rounded_rect(img: np.ndarray, x: int, y: int, w: int, h: int, fill: Colour, border: Colour,
                 radius: int = 3) -> None:
    """A filled rectangle with rounded corners and a 1-pixel border."""
    yy, xx = np.mgrid[0:h, 0:w]
    # distance outside the inner (corner-centre) rectangle
    dx = np.maximum(np.maximum(radius - xx, xx - (w - 1 - radius)), 0)
    dy = np.maximum(np.maximum(radius - yy, yy - (h - 1 - radius)), 0)
    d2 = dx * dx + dy * dy
    inside = d2 <= radius * radius + radius  # a slightly fuller corner reads better at this size
    edge = inside & ((d2 > (radius - 1) ** 2 + (radius - 1)) | (xx == 0) | (yy == 0) | (xx == w - 1) | (yy == h - 1))
    _blit_mask(img, x, y, inside & ~edge, fill)
    _blit_mask(img, x, y, edge, border)


def fill_circle(img: np.ndarray, cx: float, cy: float, r: float, colour: Colour) -> None:
    """Fill a disc centred at pixel coordinates ``(cx, cy)`` (pixel centres at integers)."""
    x0, y0 = int(np.floor(cx - r)), int(np.floor(cy - r))
    n = int(np.ceil(2 * r)) + 2
    yy, xx = np.mgrid[0:n, 0:n]
    mask = (xx + x0 - cx) ** 2 + (yy + y0 - cy) ** 2 <= r * r
    _blit_mask(img, x0, y0, mask, colour)


def _blit_mask(img: np.ndarray, x: int, y: int, mask: np.ndarray, colour: Colour) -> None:
    H, W = img.shape[:2]
    h, w = mask.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 >= x1 or y0 >= y1:
        return
    m = mask[y0 - y:y1 - y, x0 - x:x1 - x]
    img[y0:y1, x0:x1][m] = colour


# ---- a 5x7 font, only the characters the bundled games draw --------------------------------------
_GLYPHS = {
    "S": ".###.|#...#|#....|.###.|....#|#...#|.###.",
    "a": ".....|.....|.###.|....#|.####|#...#|.####",
    "v": ".....|.....|#...#|#...#|#...#|.#.#.|..#..",
    "e": ".....|.....|.###.|#...#|#####|#....|.###.",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
    "p": ".....|.....|####.|#...#|####.|#....|#....",
    "n": ".....|.....|####.|#...#|#...#|#...#|#...#",
    "Q": ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",
    "u": ".....|.....|#...#|#...#|#...#|#..##|.##.#",
    "i": "..#..|.....|.##..|..#..|..#..|..#..|.###.",
    "t": ".#...|.#...|####.|.#...|.#...|.#..#|..##.",
    "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#",
    "l": ".##..|..#..|..#..|..#..|..#..|..#..|.###.",
    "E": "#####|#....|#....|####.|#....|#....|#####",
    "d": "....#|....#|.####|#...#|#...#|#...#|.####",
    " ": ".....|.....|.....|.....|.....|.....|.....",
}
GLYPH_W, GLYPH_H, GLYPH_ADVANCE = 5, 7, 6
_GLYPH_MASKS = {c: np.array([[ch == "#" for ch in row] for row in g.split("|")]) for c, g in _GLYPHS.items()}


def text_width(text: str) -> int:
    """Width in pixels of ``text`` drawn with ``draw_text``."""
    return max(0, len(text) * GLYPH_ADVANCE - 1)


def draw_text(img: np.ndarray, x: int, y: int, text: str, colour: Colour) -> None:
    """Draw ``text`` with its top-left corner at ``(x, y)``; characters without a glyph are blank."""
    for i, ch in enumerate(text):
        mask = _GLYPH_MASKS.get(ch)
        if mask is not None:
            _blit_mask(img, x + i * GLYPH_ADVANCE, y, mask, colour)


# ---- the mouse pointer: black arrow, white edge, hotspot at the top-left pixel ---------------------
_POINTER = [
    "W.......",
    "WW......",
    "WBW.....",
    "WBBW....",
    "WBBBW...",
    "WBBBBW..",
    "WBBBBBW.",
    "WBBBBBBW",
    "WBBBWWWW",
    "WBWBW...",
    "WW.WBW..",
    "W...WW..",
]
_POINTER_BLACK = np.array([[c == "B" for c in row] for row in _POINTER])
_POINTER_WHITE = np.array([[c == "W" for c in row] for row in _POINTER])


def draw_pointer(img: np.ndarray, x: int, y: int) -> None:
    """Draw the mouse pointer with its hotspot (the arrow tip) at pixel ``(x, y)``."""
    _blit_mask(img, x, y, _POINTER_WHITE, (255, 255, 255))
    _blit_mask(img, x, y, _POINTER_BLACK, (0, 0, 0))
