"""Execute the tutorials: each jupytext percent-format ``NN_*.py`` becomes a notebook with outputs.

The ``.py`` files are the source of truth (diff-friendly, reviewed like code); notebooks are
built from them, never committed. This script is what the test suite
(``tests/test_tutorials.py``) and the documentation build run::

    python docs/tutorials/execute.py                        # run every tutorial, report times
    python docs/tutorials/execute.py 01 --out runs/tutorials --figures
    python docs/tutorials/execute.py --list

Each tutorial is converted with jupytext and executed by nbclient in a fresh IPython kernel
(the interpreter running this script) with the working directory ``--cwd`` (default: a new
temporary folder, so files a tutorial writes land there); a cell that raises fails the run
with the cell's traceback. With ``--out`` the executed notebook is written there
(``NN_name.ipynb``, outputs and figures included) and, with ``--figures``, every figure as
``NN_name_figK.png`` (K = 1, 2, ... in order), to look at. Needs the ``docs`` extra
(``pip install -e '.[docs]'``: jupytext, nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: The folder of the tutorials (this file's).
TUTORIALS_DIR = Path(__file__).resolve().parent
#: Seconds one cell may run before the execution fails.
CELL_TIMEOUT_S = 600


def tutorial_paths(selection: list[str] | None = None) -> list[Path]:
    """The tutorials (``NN_*.py`` in :data:`TUTORIALS_DIR`, in order); ``selection`` keeps those
    whose file name starts with one of its entries (``"01"``, ``"07_your"``)."""
    paths = sorted(p for p in TUTORIALS_DIR.glob("[0-9][0-9]_*.py"))
    if not selection:
        return paths
    chosen = [p for p in paths if any(p.name.startswith(s) for s in selection)]
    unknown = [s for s in selection if not any(p.name.startswith(s) for p in paths)]
    if unknown:
        raise ValueError(f"No tutorial starts with {unknown}; there are "
                         f"{[p.name for p in paths]}.")
    return chosen


@dataclass
class Executed:
    """One executed tutorial: its notebook (``nbformat.NotebookNode``) and run time."""

    path: Path
    notebook: object
    seconds: float

    def figures(self) -> list[bytes]:
        """The PNG figures of the outputs, in order."""
        out = []
        for cell in self.notebook.cells:          # type: ignore[attr-defined]
            for o in cell.get("outputs", []):
                png = o.get("data", {}).get("image/png")
                if png:
                    out.append(base64.b64decode(png))
        return out


def execute(path: str | os.PathLike, cwd: str | os.PathLike | None = None,
            timeout: int = CELL_TIMEOUT_S) -> Executed:
    """Convert the percent-format tutorial ``path`` to a notebook and execute it.

    ``cwd``: the working directory of the kernel (default: a fresh temporary folder, removed
    afterwards). Raises ``nbclient.exceptions.CellExecutionError`` (with the failing cell's
    traceback) if a cell raises, ``nbclient.exceptions.CellTimeoutError`` past ``timeout``
    seconds in one cell.
    """
    try:
        import jupytext
        from nbclient import NotebookClient
    except ImportError as e:
        raise ImportError(f"Executing the tutorials needs the docs extra: pip install -e "
                          f"'.[docs]' ({e}).") from e
    path = Path(path)
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    with tempfile.TemporaryDirectory(prefix="covercast_tutorial_") as tmp:
        where = Path(cwd) if cwd is not None else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(where)}})
        t0 = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - t0
    # an error raised after a cell ran (e.g. drawing its figure) is an output, not a failure
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
              for i, cell in enumerate(nb.cells) for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"{path.name} shows errors: " + "; ".join(errors))
    return Executed(path, nb, seconds)


def write(result: Executed, out: str | os.PathLike, figures: bool = False) -> list[Path]:
    """Write the executed notebook (and, with ``figures``, its PNGs) to ``out``; the paths."""
    import nbformat

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = result.path.stem
    written = [out / f"{stem}.ipynb"]
    tmp = written[0].with_suffix(".ipynb.tmp")
    nbformat.write(result.notebook, tmp)
    os.replace(tmp, written[0])
    if figures:
        for k, png in enumerate(result.figures(), start=1):
            p = out / f"{stem}_fig{k}.png"
            p.write_bytes(png)
            written.append(p)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tutorials", nargs="*", help="name prefixes (default: all), e.g. 01 07")
    ap.add_argument("--out", help="write the executed notebooks here")
    ap.add_argument("--figures", action="store_true", help="also write each figure as PNG")
    ap.add_argument("--cwd", help="working directory of the kernel (default: a temporary one)")
    ap.add_argument("--list", action="store_true", help="list the tutorials and exit")
    args = ap.parse_args(argv)
    paths = tutorial_paths(args.tutorials)
    if args.list:
        print("\n".join(p.name for p in paths))
        return 0
    if args.figures and not args.out:
        ap.error("--figures needs --out")
    total = 0.0
    for p in paths:
        r = execute(p, cwd=args.cwd)
        total += r.seconds
        extra = ""
        if args.out:
            extra = f" -> {write(r, args.out, args.figures)[0]}"
        print(f"{p.name}: {r.seconds:.1f} s, {len(r.figures())} figures{extra}", flush=True)
    print(f"all {len(paths)}: {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
