"""Helpers shared by every part of covercast (standard library only, no heavy imports at
import time): atomic file writing, argument checks with one message form, Markdown tables,
figure files."""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def pyplot() -> Any:
    """matplotlib's ``pyplot`` on the file-only Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> str:
    """Write a matplotlib figure to ``path`` as PNG atomically, close it and return the
    file's name."""
    atomic_write(path, lambda p: fig.savefig(p, dpi=dpi, format="png"))
    pyplot().close(fig)
    return Path(path).name


def atomic_write_csv(df: Any, path: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV (without its index) to ``path`` atomically."""
    return atomic_write(path, lambda p: df.to_csv(p, index=False), suffix=".csv")


def check_int(value: Any, name: str, lo: int = 1, hi: int | None = None) -> int:
    """``value`` as an int; bools, non-integers and values outside ``[lo, hi]`` are refused
    with ``ValueError: `name` must be an integer >= lo (or in [lo, hi]), got value.``
    (numpy integers are accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo \
            or (hi is not None and value > hi):
        bounds = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"`{name}` must be an integer {bounds}, got {value!r}.")
    return int(value)


def check_number(value: Any, name: str, *, lo: float = -math.inf, hi: float = math.inf,
                 lo_open: bool = False, hi_open: bool = False, allow_inf: bool = False
                 ) -> float:
    """``value`` as a float; bools, non-numbers, NaN and values outside the interval from
    ``lo`` to ``hi`` (each end closed unless ``lo_open`` / ``hi_open``) are refused with
    ``ValueError: `name` must be a number ..., got value.`` An infinite value is refused
    unless ``allow_inf`` (``+inf`` where ``hi`` is infinite)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        v = float(value)
        ok = (not math.isnan(v) and (v > lo if lo_open or lo == -math.inf else v >= lo)
              and ((v < hi if hi_open or hi == math.inf else v <= hi)
                   or (allow_inf and v == hi == math.inf)))
    if not ok:
        if hi == math.inf:
            bounds = f"> {lo:g}" if lo_open or lo == -math.inf else f">= {lo:g}"
            bounds += " (or inf)" if allow_inf else ""
        elif lo == -math.inf:
            bounds = f"< {hi:g}" if hi_open else f"<= {hi:g}"
        else:
            bounds = (f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")
        raise ValueError(f"`{name}` must be a number {bounds}, got {value!r}.")
    return float(value)


def check_fields(config: Any, *, ints: Iterable[str] = (), counts: Iterable[str] = (),
                 positive: Iterable[str] = (), nonneg: Iterable[str] = (),
                 fractions: Iterable[str] = (), at_least: Iterable[tuple[str, int]] = (),
                 choices: dict[str, Sequence[Any]] | None = None) -> None:
    """Refuse a config (any object) whose named fields are out of range: ``ints`` must be
    integers >= 1, ``counts`` integers >= 0, ``positive`` numbers > 0, ``nonneg`` numbers
    >= 0, ``fractions`` numbers in [0, 1), each ``(name, lowest)`` of ``at_least`` an
    integer >= lowest, ``choices`` one of the values given per field.
    The first bad field raises (see :func:`check_int`, :func:`check_number`)."""
    for name in ints:
        check_int(getattr(config, name), name)
    for name in counts:
        check_int(getattr(config, name), name, 0)
    for name in positive:
        check_number(getattr(config, name), name, lo=0, lo_open=True)
    for name in nonneg:
        check_number(getattr(config, name), name, lo=0)
    for name in fractions:
        check_number(getattr(config, name), name, lo=0, hi=1, hi_open=True)
    for name, lo in at_least:
        check_int(getattr(config, name), name, lo)
    for name, allowed in (choices or {}).items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"`{name}` must be one of {tuple(allowed)}, got "
                             f"{getattr(config, name)!r}.")


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]],
             align: str | Sequence[str] | None = None, fmt: Callable[[Any], str] = str
             ) -> list[str]:
    """A Markdown table as lines: the header, the rule, one line per row.

    ``rows`` hold cells (each passed through ``fmt``; strings are kept as they are);
    ``align`` is one rule cell per column (``"---"``, ``"---:"``...) or one for all (default
    ``"---"``).
    """
    rule = [align or "---"] * len(header) if align is None or isinstance(align, str) \
        else list(align)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in r) + " |"
              for r in rows]
    return lines


def md_frame(df: Any, floatfmt: str = ".3g") -> str:
    """A DataFrame as a Markdown table (its columns as the header, no index): real numbers
    that are not integers as ``floatfmt``, NaN as "n/a", anything else as ``str``."""
    def cell(v: Any) -> str:
        if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
            return "n/a" if math.isnan(v) else format(v, floatfmt)
        return str(v)

    return "\n".join(md_table([str(c) for c in df.columns], df.itertuples(index=False),
                              fmt=cell))
