"""Read the overlay back out of a frame, possibly rescaled, blurred or imagined by a video model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from overlays.action import Action
from overlays.layout import Layout
from overlays.render import LABEL_BAND, cell_rect, pad_geometry, pad_rect, strip_box


@dataclass(frozen=True)
class OverlayReading:
    """What a frame's overlay says.

    Args:
        action: the thresholded action (probability >= 0.5 means held).
        key_probs: per key, probability that it is held.
        button_probs: per mouse button, probability that it is held.
        confidence: 0..1, how clearly the cells are black or white (1 = all clear-cut).
    """

    action: Action
    key_probs: dict
    button_probs: dict
    confidence: float


def _mean(gray: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> float:
    h, w = gray.shape
    a, b = int(math.ceil(x0)), int(math.floor(x1))
    c, d = int(math.ceil(y0)), int(math.floor(y1))
    if b <= a:
        a, b = int(math.floor((x0 + x1) / 2)), int(math.floor((x0 + x1) / 2)) + 1
    if d <= c:
        c, d = int(math.floor((y0 + y1) / 2)), int(math.floor((y0 + y1) / 2)) + 1
    a, b, c, d = max(a, 0), min(b, w), max(c, 0), min(d, h)
    if b <= a or d <= c:
        return 1.0
    return float(gray[c:d, a:b].mean())


def _edge(profile: np.ndarray, lo: float, hi: float) -> float | None:
    """Centre of the darkest line in ``profile[lo:hi]`` (weighted by darkness above half its peak)."""
    a, b = max(0, int(math.ceil(lo))), min(len(profile), int(math.floor(hi)))
    if b - a < 2:
        return None
    seg = profile[a:b]
    peak = float(seg.max())
    if peak < 0.35:
        return None
    w = np.clip(seg - 0.5 * peak, 0, None)
    return a + float((w * (np.arange(len(seg)) + 0.5)).sum() / w.sum())


def read_overlay(frame: np.ndarray, layout: Layout, placement: str = "strip",
                 source_shape: tuple[int, int] | None = None, corner_fraction: float = 0.4) -> OverlayReading:
    """Read the action drawn on ``frame``.

    Args:
        frame: (H', W', 3) uint8 with the overlay, at any size.
        layout: the layout it was drawn with.
        placement: as given to ``render_overlay``.
        source_shape: (H, W) of the frame before the overlay was drawn, when the frame was rescaled
            non-uniformly; by default a uniform rescale is assumed.
    Returns:
        ``OverlayReading`` with probabilities and confidence.
    """
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must have shape (H, W, 3), got {getattr(frame, 'shape', type(frame).__name__)}")
    H2, W2 = frame.shape[:2]
    gray = frame.astype(np.float32).mean(axis=2) / 255.0
    if source_shape is None:
        src_w = W2
        src_h = H2 - layout.strip_height(W2) if placement == "strip" else H2
    else:
        src_h, src_w = source_shape
    ox, oy, pw, ph = strip_box((src_h, src_w), layout, placement, corner_fraction)
    out_h = src_h + (layout.strip_height(src_w) if placement == "strip" else 0)
    sx, sy = W2 / src_w, H2 / out_h

    key_probs, button_probs, clear = {}, {}, []
    mouse = (0.0, 0.0)
    for c in layout.cells:
        if c.kind == "mouse":
            mouse, mclear = _read_pad(gray, c, layout, ox, oy, pw, ph, sx, sy)
            clear.append(mclear)
            continue
        x0, y0, x1, y1 = cell_rect(c.box, pw, ph)
        cw, chh = x1 - x0, y1 - y0
        ix0, ix1 = (ox + x0 + 0.18 * cw) * sx, (ox + x1 - 0.18 * cw) * sx
        iy0, iy1 = (oy + y0 + (LABEL_BAND + 0.1) * chh) * sy, (oy + y1 - 0.15 * chh) * sy
        m = _mean(gray, ix0, iy0, ix1, iy1)
        p = float(np.clip(1.0 - m, 0.0, 1.0))
        (key_probs if c.kind == "key" else button_probs)[c.name] = p
        clear.append(abs(2 * p - 1))
    action = Action(keys=frozenset(k for k, p in key_probs.items() if p >= 0.5), mouse=mouse,
                    buttons=frozenset(b for b, p in button_probs.items() if p >= 0.5))
    return OverlayReading(action=action, key_probs=key_probs, button_probs=button_probs,
                          confidence=float(np.mean(clear)) if clear else 1.0)


def _read_pad(gray, cell, layout, ox, oy, pw, ph, sx, sy):
    """Mouse velocity from the arrow's ink centroid; the pad's border locates its true centre."""
    rect = pad_rect(cell.box, pw, ph)
    cx, cy, radius, thick, border = pad_geometry(rect)
    x0, y0, x1, y1 = rect
    # expected pad in output pixels
    fx0, fx1, fy0, fy1 = (ox + x0) * sx, (ox + x1) * sx, (oy + y0) * sy, (oy + y1) * sy
    side_x, side_y = fx1 - fx0, fy1 - fy0
    dark = 1.0 - gray
    dx = dy = 0.0
    if min(side_x, side_y) >= 16:
        m = max(2.0, 0.07 * side_x)
        r0, r1 = int(max(0, fy0 + 0.1 * side_y)), int(min(gray.shape[0], fy1 - 0.1 * side_y))
        c0, c1 = int(max(0, fx0 + 0.1 * side_x)), int(min(gray.shape[1], fx1 - 0.1 * side_x))
        if r1 > r0 and c1 > c0:
            col = dark[r0:r1].mean(axis=0)
            row = dark[:, c0:c1].mean(axis=1)
            bx, by = border * sx / 2, border * sy / 2
            L = _edge(col, fx0 - m, fx0 + 2 * bx + m)
            R = _edge(col, fx1 - 2 * bx - m, fx1 + m)
            T = _edge(row, fy0 - m, fy0 + 2 * by + m)
            B = _edge(row, fy1 - 2 * by - m, fy1 + m)
            if L is not None and R is not None:
                dx = ((L - (fx0 + bx)) + (R - (fx1 - bx))) / 2
            if T is not None and B is not None:
                dy = ((T - (fy0 + by)) + (B - (fy1 - by))) / 2
    inset = border + max(1.0, 0.02 * (x1 - x0))
    ix0, ix1 = (ox + x0 + inset) * sx + dx, (ox + x1 - inset) * sx + dx
    iy0, iy1 = (oy + y0 + inset) * sy + dy, (oy + y1 - inset) * sy + dy
    a, b = max(0, int(math.ceil(ix0))), min(gray.shape[1], int(math.floor(ix1)))
    c, d = max(0, int(math.ceil(iy0))), min(gray.shape[0], int(math.floor(iy1)))
    if b <= a or d <= c:
        return (0.0, 0.0), 0.0
    ink = dark[c:d, a:b]
    bg = float(np.median(ink))
    ink = np.clip(ink - bg - 0.15, 0, None)
    mass = float(ink.sum())
    dot = math.pi * (thick / 2) ** 2 * sx * sy * 0.75
    clarity = float(np.clip(abs(mass / (0.25 * dot) - 1), 0, 1))  # far from the ink threshold = clear
    if mass < 0.25 * dot:
        return (0.0, 0.0), clarity
    yy, xx = np.mgrid[c:d, a:b].astype(np.float32) + 0.5
    ccx, ccy = (ox + cx) * sx + dx, (oy + cy) * sy + dy
    # only ink within reach of the arrow counts: a blurred border must not pull the centroid
    reach = radius + thick / 2 + 0.045 * (x1 - x0)
    ink = ink * ((((xx - ccx) / sx) ** 2 + ((yy - ccy) / sy) ** 2) <= reach ** 2)
    mass = float(ink.sum())
    if mass < 0.25 * dot:
        return (0.0, 0.0), clarity
    mx, my = float((ink * xx).sum() / mass), float((ink * yy).sum() / mass)
    vx = 2 * (mx - ccx) / (radius * sx) * layout.max_speed
    vy = 2 * (my - ccy) / (radius * sy) * layout.max_speed
    sp = math.hypot(vx, vy)
    if sp > layout.max_speed:
        vx, vy = vx * layout.max_speed / sp, vy * layout.max_speed / sp
    return (vx, vy), clarity
