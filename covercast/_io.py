"""Atomic file writing shared by every part of covercast (numpy-only, no heavy imports)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The temporary file gets the usual ``0o666 & ~umask`` permissions (``mkstemp`` makes
    ``0600`` files) and is removed if the block raises, so a reader never sees a half-written
    result and a failed write leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                               suffix=suffix if suffix is not None else path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object],
                 suffix: str | None = None) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically; return ``path``."""
    with atomic_path(path, suffix) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_text(text))


def prepare_output_dir(path: str | os.PathLike, *, resume: bool = False,
                       overwrite: bool = False, what: str = "run folder",
                       resume_flag: str | None = "--resume",
                       overwrite_flag: str = "--overwrite") -> Path:
    """Make ``path`` a folder a command may write into, never silently mixing two runs.

    A missing or empty folder is created. A folder with files is refused with
    ``FileExistsError`` (naming the files and the flags) unless ``resume`` (the caller continues
    the run it holds) or ``overwrite`` (its contents are deleted first). ``resume_flag=None``:
    the command cannot resume, so the error offers ``overwrite_flag`` only. A path that is a
    file is refused either way.
    """
    import shutil

    p = Path(path)
    if resume and overwrite:
        raise ValueError(f"{resume_flag} and {overwrite_flag} contradict each other: choose "
                         "one.")
    if p.exists() and not p.is_dir():
        raise FileExistsError(f"{p} is a file, not a {what}; choose another --out.")
    present = sorted(x.name for x in p.iterdir()) if p.is_dir() else []
    if present and not resume:
        if not overwrite:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            how = (f"pass {resume_flag} to continue it, {overwrite_flag} to delete it and "
                   "start again, or" if resume_flag else
                   f"pass {overwrite_flag} to delete it and start again, or")
            raise FileExistsError(f"{p} already holds a {what} ({shown}); {how} choose "
                                  "another --out.")
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
    return p


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_csv(df: Any, path: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV (without its index) to ``path`` atomically."""
    return atomic_write(path, lambda p: df.to_csv(p, index=False), suffix=".csv")
