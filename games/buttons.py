"""``buttons``: click the button the prompt names, in a desktop-like window, with the mouse.

The 128x128 frame is a window: light grey client area under a navy title bar (12 px). Three
buttons (rounded rects, 36x20 px) with distinct labels drawn from Save, Open, Quit, Help and Edit
lie at random non-overlapping positions (at least 4 px apart). Each button is filled with its
label's own colour (``LABEL_RGB``: Save red, Open green, Quit blue, Help yellow, Edit magenta) so a
small model can tell them apart. The pointer is a small black arrow with a white edge, its tip
(the hotspot) at the pointer position; a button under a held left mouse button is drawn darker.

Input (layout ``mouse``): ``Action.mouse`` is the pointer velocity in pixels per second of the
128-px frame, clamped to ``max_speed`` = 600 px/s; each step the pointer moves ``v * 0.1`` px,
clamped to the frame. ``"left"`` in ``Action.buttons`` means the left button is held during the
step; a click is a press: held in this step and not in the previous one, counted at the pointer
position after this step's move, on the button whose rectangle holds the hotspot pixel.

Success: the named button is clicked (terminated, reward 1). A click on another button ends the
episode as a failure (terminated). A click on the background does nothing. Step cap: 30 steps
(3 s), then truncated. The prompt names the button ("click Save"; templates in ``games.prompts``).
"""

from __future__ import annotations

import math

import numpy as np

from games.base import FRAME_SIZE, GameEnv
from games.pixels import (
    GLYPH_H,
    draw_pointer,
    draw_text,
    fill_rect,
    rounded_rect,
    text_width,
)
from games.prompts import BUTTON_LABELS, BUTTONS_EVAL, BUTTONS_TRAIN, pick_template
from overlays.action import Action

LABEL_RGB = {"Save": (220, 45, 45), "Open": (40, 170, 60), "Quit": (45, 80, 225),
             "Help": (240, 205, 40), "Edit": (200, 60, 200)}
TEXT_RGB = {"Save": (255, 255, 255), "Open": (255, 255, 255), "Quit": (255, 255, 255),
            "Help": (0, 0, 0), "Edit": (255, 255, 255)}
BUTTON_W, BUTTON_H = 36, 20
N_BUTTONS = 3
TITLE_H = 12
CLIENT = (215, 215, 215)
TITLE = (40, 60, 140)
BORDER = (90, 90, 100)
MAX_SPEED = 600.0
GAP = 4


def _darker(c, f=0.6):
    return tuple(int(v * f) for v in c)


class ButtonsEnv(GameEnv):
    """Click the named button with the mouse."""

    game = "buttons"
    layout_name = "mouse"
    step_cap = 30
    max_speed = MAX_SPEED

    def demonstrator(self, rng: np.random.Generator, noise: float = 0.1, click_margin: int = 3):
        from games.demonstrators import PointerDemonstrator
        return PointerDemonstrator(self, rng, noise, click_margin)

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pointer = (64.0, 64.0)
        self.buttons: dict[str, tuple[int, int, int, int]] = {}
        self.target_label = "Save"
        self.clicked: str | None = None
        self.left_held = False
        self._prompt = ""

    @property
    def prompt(self) -> str:
        return self._prompt

    # ---- geometry ------------------------------------------------------------------------------------
    @property
    def hotspot(self) -> tuple[int, int]:
        """The pixel the pointer's tip is on."""
        return int(round(self.pointer[0])), int(round(self.pointer[1]))

    def button_at(self, x: int, y: int) -> str | None:
        for label, (bx, by, w, h) in self.buttons.items():
            if bx <= x < bx + w and by <= y < by + h:
                return label
        return None

    def pointer_in(self, label: str, margin: int = 0) -> bool:
        """True when the pointer's hotspot is on button ``label``, at least ``margin`` px inside its edges."""
        bx, by, w, h = self.buttons[label]
        x, y = self.hotspot
        return bx + margin <= x < bx + w - margin and by + margin <= y < by + h - margin

    def button_centre(self, label: str) -> tuple[float, float]:
        bx, by, w, h = self.buttons[label]
        return bx + (w - 1) / 2, by + (h - 1) / 2

    # ---- episode -------------------------------------------------------------------------------------
    def _new_episode(self, rng: np.random.Generator) -> None:
        labels = [BUTTON_LABELS[int(i)] for i in sorted(rng.choice(len(BUTTON_LABELS), N_BUTTONS, replace=False))]
        rects: list[tuple[int, int, int, int]] = []
        tries = 0
        while len(rects) < N_BUTTONS:
            tries += 1
            if tries % 200 == 0:  # boxed in: start the placement over
                rects = []
            x = int(rng.integers(GAP, FRAME_SIZE - GAP - BUTTON_W + 1))
            y = int(rng.integers(TITLE_H + GAP, FRAME_SIZE - GAP - BUTTON_H + 1))
            if all(x + BUTTON_W + GAP <= ox or ox + BUTTON_W + GAP <= x or y + BUTTON_H + GAP <= oy
                   or oy + BUTTON_H + GAP <= y for ox, oy, _, _ in rects):
                rects.append((x, y, BUTTON_W, BUTTON_H))
        self.buttons = dict(zip(labels, rects))
        self.target_label = labels[int(rng.integers(N_BUTTONS))]
        cx, cy = self.button_centre(self.target_label)
        while True:
            px, py = rng.uniform(2, FRAME_SIZE - 3, size=2)
            near = any(bx - 6 <= px < bx + w + 6 and by - 6 <= py < by + h + 6
                       for bx, by, w, h in self.buttons.values())
            if not near and math.hypot(px - cx, py - cy) >= 24:
                break
        self.pointer = (float(px), float(py))
        self.clicked = None
        self.left_held = False
        template = pick_template(BUTTONS_TRAIN, BUTTONS_EVAL, self.eval_split, rng)
        self._prompt = template.format(label=self.target_label)

    def step(self, action: Action, pointer: tuple[float, float] | None = None):
        """Advance 0.1 s; see ``GameEnv.step``.

        Args:
            action: the inputs held during the step.
            pointer: for a real OS pointer only: the absolute pointer position (game pixels) at
                the end of the step, used instead of integrating ``action.mouse``.
        """
        self._pointer_override = pointer
        try:
            return super().step(action)
        finally:
            self._pointer_override = None

    def _apply(self, action: Action) -> tuple[bool, bool]:
        override = getattr(self, "_pointer_override", None)
        if override is not None:
            px, py = float(override[0]), float(override[1])
        else:
            vx, vy = action.mouse
            speed = math.hypot(vx, vy)
            if speed > self.max_speed:
                vx, vy = vx * self.max_speed / speed, vy * self.max_speed / speed
            px, py = self.pointer[0] + vx / self.fps, self.pointer[1] + vy / self.fps
        self.pointer = (min(FRAME_SIZE - 1.0, max(0.0, px)), min(FRAME_SIZE - 1.0, max(0.0, py)))
        held = "left" in action.buttons
        pressed = held and not self.left_held
        self.left_held = held
        if pressed:
            label = self.button_at(*self.hotspot)
            if label is not None:
                self.clicked = label
                return label == self.target_label, label != self.target_label
        return False, False

    # ---- drawing -------------------------------------------------------------------------------------
    def _draw(self) -> np.ndarray:
        img = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
        img[:] = CLIENT
        fill_rect(img, 0, 0, FRAME_SIZE, TITLE_H, TITLE)
        for i, c in enumerate(((230, 90, 80), (230, 190, 70), (90, 190, 90))):  # window controls
            fill_rect(img, FRAME_SIZE - 10 - 9 * i, 3, 6, 6, c)
        fill_rect(img, 3, 4, 40, 4, (150, 165, 210))  # a title, drawn as a bar
        pressed = self.button_at(*self.hotspot) if self.left_held else None
        for label, (bx, by, w, h) in self.buttons.items():
            fill = LABEL_RGB[label]
            if label == pressed:
                fill = _darker(fill)
            rounded_rect(img, bx, by, w, h, fill, _darker(LABEL_RGB[label], 0.45))
            draw_text(img, bx + (w - text_width(label)) // 2, by + (h - GLYPH_H) // 2, label, TEXT_RGB[label])
        draw_pointer(img, *self.hotspot)
        return img

    def _state(self) -> dict:
        return {"pointer": [round(self.pointer[0], 3), round(self.pointer[1], 3)],
                "buttons": {k: list(v) for k, v in self.buttons.items()},
                "target": self.target_label, "clicked": self.clicked}
