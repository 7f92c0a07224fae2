"""Text prompts: the templates training episodes use and the paraphrases kept for evaluation only.

Training episodes pick the canonical template (the first one) half of the time and another
training template otherwise; evaluation episodes (the seeds in ``games.heldout.EVAL_SEEDS``) pick
one of the evaluation paraphrases, none of which occurs in training.
"""

from __future__ import annotations

import numpy as np

COIN_COLOURS = ("red", "green", "blue", "yellow")
BUTTON_LABELS = ("Save", "Open", "Quit", "Help", "Edit")

COINS_TRAIN = (
    "collect the {colour} coin",
    "collect the {colour} one",
    "grab the {colour} coin",
    "take the {colour} coin",
    "{colour} coin",
)
COINS_EVAL = (
    "get the {colour} one",
    "go to the {colour} coin",
    "pick up {colour}",
    "fetch the {colour} coin",
    "the {colour} coin, please",
)

BUTTONS_TRAIN = (
    "click {label}",
    "click the {label} button",
    "press {label}",
    "click on {label}",
)
BUTTONS_EVAL = (
    "hit the {label} button",
    "select {label}",
    "push {label}",
    "choose {label}",
)


def all_prompts(templates: tuple[str, ...], game: str) -> set[str]:
    """Every concrete prompt the templates produce for ``game`` (``"coins"`` or ``"buttons"``)."""
    if game == "coins":
        return {t.format(colour=c) for t in templates for c in COIN_COLOURS}
    return {t.format(label=lab) for t in templates for lab in BUTTON_LABELS}


def pick_template(templates_train: tuple[str, ...], templates_eval: tuple[str, ...], eval_split: bool,
                  rng: np.random.Generator) -> str:
    """The template for one episode (see the module docstring for the rule)."""
    if eval_split:
        return templates_eval[int(rng.integers(len(templates_eval)))]
    if rng.random() < 0.5:
        return templates_train[0]
    return templates_train[1 + int(rng.integers(len(templates_train) - 1))]
