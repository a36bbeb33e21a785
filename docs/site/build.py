"""Build the documentation site (issue 16): ``make docs``, or ``python docs/site/build.py``.

The site is built offline with MkDocs (mkdocs-material, mkdocs-jupyter for the notebooks,
mkdocstrings for the API reference; the ``docs`` extra installs them). This script assembles
its pages into ``--src`` (default ``build/site_src``) and runs ``mkdocs build`` into ``--out``
(default ``build/site``):

* **Home** -- the README, its links to ``docs/`` rewritten to the copies in the site;
* **Tutorials** -- every ``docs/tutorials/NN_*.py`` as an executed notebook with its outputs and
  figures: executed now with ``docs/tutorials/execute.py`` (a fresh kernel each; 6-10 minutes
  for all of them on 2 cores), or taken from ``--notebooks DIR`` (the ``.ipynb`` files that
  ``execute.py --out DIR`` wrote), or, with ``--no-execute``, converted without outputs (a quick
  check of the site itself);
* **API reference** -- one page per subpackage, every public module's docstrings
  (mkdocstrings reads the source; nothing is imported);
* **Benchmarks** -- the full ``make bench`` report (``docs/results/bench/full``) and its README,
  with every report under ``docs/results`` copied beside them;
* **Populations** -- the data card of each suite population (``covercast/data/populations``),
  as :func:`covercast.simulators.suite.card_table` renders it.

The navigation is written into ``build/mkdocs.yml``, which inherits the repository's
``mkdocs.yml`` (theme, plugins). ``docs/site/check.py`` then opens a tutorial page in a headless
browser (``make docs-check``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
RESULTS = ROOT / "docs" / "results"
BENCH_REPORT = "results/bench/full/report.md"
#: Subpackages of the API reference, in the order of the navigation.
API_PACKAGES = ("envs", "agents", "ope", "simulators", "covers", "generators", "experiments")


def _execute_module():
    """docs/tutorials/execute.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("covercast_tutorials_execute",
                                                  TUTORIALS / "execute.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod                # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def rewrite_links(text: str) -> str:
    """README links into ``docs/`` point at the site's copies: ``docs/results/x`` ->
    ``results/x``, ``docs/img/x`` -> ``img/x``, a tutorial's ``.py`` -> its notebook page."""
    text = re.sub(r"\]\(docs/tutorials/(\d\d_[A-Za-z0-9_]+)\.py\)", r"](tutorials/\1.ipynb)", text)
    return re.sub(r"\]\(docs/(results|img)/", r"](\1/", text)


def _tutorial_index(src: Path) -> None:
    text = (TUTORIALS / "README.md").read_text()
    text = re.sub(r"\]\((\d\d_[A-Za-z0-9_]+)\.py\)", r"](\1.ipynb)", text)
    (src / "tutorials" / "index.md").write_text(text)


def tutorials(src: Path, notebooks: Path | None, execute: bool,
              selection: list[str] | None = None) -> list[str]:
    """Put the tutorial notebooks in ``src/tutorials`` (``selection``: name prefixes, as in
    ``execute.py``; default all); their site paths, in order."""
    ex = _execute_module()
    out = src / "tutorials"
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for path in ex.tutorial_paths(selection):
        target = out / f"{path.stem}.ipynb"
        if notebooks is not None:
            found = notebooks / f"{path.stem}.ipynb"
            if not found.is_file():
                raise FileNotFoundError(f"{found} is missing: run `python docs/tutorials/"
                                        f"execute.py --out {notebooks}` first, or build "
                                        "without --notebooks (executes the tutorials).")
            shutil.copyfile(found, target)
        elif execute:
            t0 = time.perf_counter()
            ex.write(ex.execute(path), out)
            print(f"  executed {path.name} in {time.perf_counter() - t0:.0f} s", flush=True)
        else:
            import jupytext
            import nbformat

            nbformat.write(jupytext.read(path), target)
        pages.append(f"tutorials/{target.name}")
    _tutorial_index(src)
    return pages


def api_pages(src: Path) -> list[dict[str, str]]:
    """One page per subpackage with a mkdocstrings block per public module."""
    out = src / "api"
    out.mkdir(parents=True, exist_ok=True)
    nav = []
    for pkg in API_PACKAGES:
        modules = sorted(p.stem for p in (ROOT / "covercast" / pkg).glob("*.py")
                         if not p.stem.startswith("_"))
        body = [f"# covercast.{pkg}", "", f"::: covercast.{pkg}",
                "    options:", "      show_root_heading: false", "      members: false", ""]
        body += [f"::: covercast.{pkg}.{m}\n" for m in modules]
        (out / f"{pkg}.md").write_text("\n".join(body))
        nav.append({f"covercast.{pkg}": f"api/{pkg}.md"})
    return nav


def population_pages(src: Path) -> list[dict[str, str]]:
    """A page per suite population: purpose, source and the data card's table."""
    from covercast.simulators.suite import card_table, load_card

    out = src / "populations"
    out.mkdir(parents=True, exist_ok=True)
    cards = sorted((ROOT / "covercast" / "data" / "populations").glob("*.card.json"))
    nav, rows = [], []
    for path in cards:
        name = path.name[: -len(".card.json")]
        card = load_card(name)
        text = [f"# {name}", "", f"**Split:** {card['split']}", "", f"**Purpose.** {card['purpose']}",
                "", f"**Source.** {card['source']}", "",
                f"**Built by** `{card['built_by']}`; statistics measured with "
                f"`{json.dumps(card['measured_with'])}`.", "", card_table(name), ""]
        (out / f"{name}.md").write_text("\n".join(text))
        nav.append({name: f"populations/{name}.md"})
        rows.append(f"| [{name}]({name}.md) | {card['split']} | {card['purpose']} |")
    index = ["# Population data cards", "",
             "The suite populations (`covercast/data/populations/`) with their data cards: what "
             "each is for, where its numbers come from, and the statistics it was built to have "
             "(`covercast populations build` rebuilds them).", "",
             "| population | split | purpose |", "|---|---|---|", *rows, ""]
    (out / "index.md").write_text("\n".join(index))
    return [{"Overview": "populations/index.md"}, *nav]


def assemble(src: Path, notebooks: Path | None = None, execute: bool = True,
             selection: list[str] | None = None) -> dict:
    """Write every page into ``src`` (emptied first); returns the navigation."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    (src / "index.md").write_text(rewrite_links((ROOT / "README.md").read_text()))
    shutil.copytree(RESULTS, src / "results")
    shutil.copytree(ROOT / "docs" / "img", src / "img")
    if not (src / BENCH_REPORT).is_file():
        raise FileNotFoundError(f"The benchmark report {RESULTS / 'bench/full/report.md'} is "
                                "missing (make bench writes it).")
    tut = tutorials(src, notebooks, execute, selection)
    return {"nav": [
        {"Home": "index.md"},
        {"Tutorials": [{"Overview": "tutorials/index.md"}, *tut]},
        {"API reference": api_pages(src)},
        {"Benchmarks": [{"Report (make bench)": BENCH_REPORT},
                        {"What was measured": "results/bench/README.md"}]},
        {"Populations": population_pages(src)},
    ]}


def write_config(config_path: Path, src: Path, out: Path, nav: dict) -> None:
    """``config_path``: inherits the repository's mkdocs.yml, with the folders and the nav."""
    import yaml

    cfg = {"INHERIT": str(ROOT / "mkdocs.yml"), "docs_dir": str(src.resolve()),
           "site_dir": str(out.resolve()), **nav}
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def build(out: Path, src: Path, notebooks: Path | None = None, execute: bool = True,
          selection: list[str] | None = None) -> Path:
    """Assemble the pages and run ``mkdocs build``; returns the site's folder."""
    nav = assemble(src, notebooks, execute, selection)
    config = src.parent / "mkdocs.yml"
    write_config(config, src, out, nav)
    cmd = [sys.executable, "-m", "mkdocs", "build", "--clean", "-f", str(config)]
    # cwd: mkdocs-jupyter keeps its cache in .cache/ of the working directory
    subprocess.run(cmd, check=True, cwd=config.parent)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "site"), help="the built site")
    ap.add_argument("--src", default=str(ROOT / "build" / "site_src"),
                    help="where the pages are assembled (emptied first)")
    ap.add_argument("--notebooks", help="take the executed tutorials from this folder "
                    "(execute.py --out DIR) instead of executing them")
    ap.add_argument("--no-execute", action="store_true",
                    help="tutorials without outputs (a quick check of the site)")
    ap.add_argument("--tutorials", nargs="*", help="only these tutorials (name prefixes, "
                    "e.g. 01); default all")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    site = build(Path(args.out), Path(args.src),
                 Path(args.notebooks) if args.notebooks else None, not args.no_execute,
                 args.tutorials or None)
    print(f"site: {site / 'index.html'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
