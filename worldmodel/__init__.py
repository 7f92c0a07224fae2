"""framepilot's own small video world model: predicts gameplay video with the overlay in it.

The names below load on first use, so ``worldmodel.checkpoints`` (metadata, paths, ``MissingModel``)
is importable without torch and diffusers, e.g. by the command line before it needs a model.
"""

__all__ = ["FramepilotUNet", "make_scheduler", "TextEncoder"]


def __getattr__(name: str):
    if name in ("FramepilotUNet", "make_scheduler"):
        from worldmodel import model
        return getattr(model, name)
    if name == "TextEncoder":
        from worldmodel.text import TextEncoder
        return TextEncoder
    raise AttributeError(f"module 'worldmodel' has no attribute {name!r}")
