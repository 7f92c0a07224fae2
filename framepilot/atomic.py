"""Atomic writes of the files a later run depends on (training state, checkpoints, corpus metadata).

Each file is written to a temporary file in the same folder, flushed to disk and then renamed over
its destination with ``os.replace``, so a kill at any moment leaves either the old file or the new
one, never a truncated mix. Temporary names start with a dot and end with ``.tmp``, so globs for
the real names (``meta.json``, ``*.safetensors``) never see them; a kill can leave one behind,
which the next write of the same file replaces.

    from framepilot.atomic import atomic_write, atomic_path, replace_into
    atomic_write(folder / "meta.json", json.dumps(meta))
    with atomic_path(folder / "weights.safetensors") as tmp:   # for writers that take a path
        save_file(tensors, str(tmp))
    replace_into(folder, model.save_pretrained)                # for writers of a whole folder
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends
    without an exception, removed otherwise."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, data: str | bytes, fsync: bool = True) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def replace_into(folder: str | os.PathLike, write: Callable[[str], object], fsync: bool = True) -> list[Path]:
    """Call ``write(tmp_folder)`` (e.g. a model's ``save_pretrained``) on a temporary folder inside
    ``folder``, then move each file it wrote over the same name in ``folder`` with ``os.replace``.
    Returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".write-", suffix=".tmp", dir=folder))
    try:
        write(str(tmp))
        done = []
        for src in sorted(tmp.iterdir()):
            if not src.is_file():
                raise RuntimeError(f"replace_into moves files only; {src.name} is a folder")
            if fsync:
                _fsync_file(src)
            os.replace(src, folder / src.name)
            done.append(folder / src.name)
        if fsync:
            _fsync_dir(folder)
        return done
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
