"""Every tutorial in docs/tutorials executes without an exception (issue 16: they must never rot).

Each ``NN_*.py`` (jupytext percent format) is converted to a notebook and executed in a fresh
kernel by ``docs/tutorials/execute.py``, the same path the documentation build takes; a cell
that raises fails the test with its traceback. Each tutorial's run time is printed (budget: 3
minutes each on 2 cores, 15 minutes together).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupytext", reason="the tutorials need the docs extra (pip install -e "
                    "'.[docs]'; the test extra has it too)")
pytest.importorskip("nbclient", reason="the tutorials need the docs extra")
pytest.importorskip("ipykernel", reason="the tutorials need the docs extra")

_EXECUTE = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "execute.py"
_spec = importlib.util.spec_from_file_location("covercast_tutorials_execute", _EXECUTE)
tutorials = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = tutorials          # dataclasses look their module up there
_spec.loader.exec_module(tutorials)

PATHS = tutorials.tutorial_paths()


def test_there_are_tutorials():
    # issue 16's seven tutorials, in order
    assert [p.name[:3] for p in PATHS] == [f"{k:02d}_" for k in range(1, 8)]


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_tutorial_executes(path, tmp_path, capsys):
    result = tutorials.execute(path, cwd=tmp_path)
    figures = result.figures()
    with capsys.disabled():
        print(f"\n[tutorial] {path.name}: {result.seconds:.1f} s, {len(figures)} figures")
    assert figures, f"{path.name} shows no figure"
    assert all(f.startswith(b"\x89PNG") for f in figures)


BROKEN = {
    # a cell that raises: nbclient stops there
    "raising_cell": ("# %% [markdown]\n# A cell that raises.\n\n# %%\nx = 1\n\n# %%\n"
                     "raise RuntimeError('this tutorial is broken')\n",
                     "CellExecutionError", "this tutorial is broken"),
    # a figure that fails only when drawn, after its cell ran: an error output
    "figure_fails_to_draw": ("# %%\nimport matplotlib.pyplot as plt\n\n"
                             "fig, ax = plt.subplots()\nax.set_title(r'$\\frac{$')\n",
                             "RuntimeError", "shows errors: cell 0: ValueError"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_tutorial_fails_the_run(case, tmp_path):
    source, error, message = BROKEN[case]
    bad = tmp_path / f"99_{case}.py"
    bad.write_text(source)
    with pytest.raises(Exception, match=message) as info:
        tutorials.execute(bad, cwd=tmp_path)
    assert type(info.value).__name__ == error


def test_selection_by_prefix():
    assert [p.name[:2] for p in tutorials.tutorial_paths(["07"])] == ["07"]
    with pytest.raises(ValueError, match="No tutorial starts with"):
        tutorials.tutorial_paths(["42"])
