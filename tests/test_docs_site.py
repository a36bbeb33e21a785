"""The documentation site (issue 16): it builds offline, and a browser shows a tutorial's figures.

``docs/site/build.py`` assembles the pages and runs MkDocs; ``docs/site/check.py`` opens a
tutorial page in headless Chromium (Playwright driving the system browser). The end-to-end
test builds the site with tutorial 1 executed and checks, in the browser, that every figure of
its page is decoded and laid out; it is skipped only where no Chromium is installed (Debian:
``apt-get install chromium``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the site needs the docs extra (pip install -e '.[docs]')")
pytest.importorskip("material", reason="the site needs mkdocs-material (the docs extra)")
pytest.importorskip("mkdocs_jupyter", reason="the site needs mkdocs-jupyter (the docs extra)")
pytest.importorskip("mkdocstrings", reason="the site needs mkdocstrings (the docs extra)")
pytest.importorskip("jupytext", reason="the tutorials need the docs extra")

_SITE = Path(__file__).resolve().parents[1] / "docs" / "site"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"covercast_site_{name}", _SITE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


site_build = _load("build")
site_check = _load("check")


def test_readme_links_point_into_the_site():
    text = ("see [the report](docs/results/bench/full/report.md), ![covers](docs/img/a.png), "
            "[tutorial 7](docs/tutorials/07_your_own_agent.py) and [code](covercast/envs)")
    assert site_build.rewrite_links(text) == (
        "see [the report](results/bench/full/report.md), ![covers](img/a.png), "
        "[tutorial 7](tutorials/07_your_own_agent.ipynb) and [code](covercast/envs)")


@pytest.fixture(scope="module")
def quick_site(tmp_path_factory):
    """The whole site with the tutorials converted but not executed (about half a minute)."""
    root = tmp_path_factory.mktemp("site")
    return site_build.build(root / "site", root / "src", execute=False)


@pytest.mark.slow
def test_the_site_has_every_part(quick_site):
    index = (quick_site / "index.html").read_text()
    assert "covercast" in index and "results/bench/full/report.html" in index
    tutorials = sorted(p.name for p in (quick_site / "tutorials").glob("[0-9][0-9]_*.html"))
    sources = sorted(p.stem for p in (_SITE.parent / "tutorials").glob("[0-9][0-9]_*.py"))
    assert tutorials == [f"{s}.html" for s in sources]
    # the API reference is rendered from the docstrings
    agents = (quick_site / "api" / "agents.html").read_text()
    assert "ThompsonStyleAgent" in agents and "Beta-Bernoulli Thompson sampling" in agents
    assert "estimate_per_decision" in (quick_site / "api" / "ope.html").read_text()
    # the benchmark report and the population data cards
    assert (quick_site / "results" / "bench" / "full" / "report.html").is_file()
    assert (quick_site / "results" / "bench" / "full" / "scaling.png").stat().st_size > 0
    card = (quick_site / "populations" / "calibrated-v1.html").read_text()
    assert "published" in card and "calibrated-v1" in card
    # offline: no web fonts, no page asks the network for its styles or scripts
    assert "fonts.googleapis.com" not in index


@pytest.mark.slow
def test_missing_executed_notebooks_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_first_push.ipynb is missing"):
        site_build.build(tmp_path / "site", tmp_path / "src", notebooks=tmp_path,
                         selection=["01"])


@pytest.mark.slow
def test_a_browser_shows_the_tutorial_figures(tmp_path):
    pytest.importorskip("playwright", reason="the browser check needs playwright (docs extra)")
    browser = site_check.find_browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    site = site_build.build(tmp_path / "site", tmp_path / "src", selection=["01"])
    page = site / "tutorials" / "01_first_push.html"
    expected = site_check.notebook_figures(site / "tutorials" / "01_first_push.ipynb")
    assert expected >= 3
    report = site_check.check_page(page, browser, tmp_path / "shots", expected)
    assert report["ok"], json.dumps(report, indent=2)
    assert report["shown"] == expected
    shot = tmp_path / "shots" / "first_figure.png"
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 5_000


@pytest.mark.slow
def test_the_browser_check_fails_on_a_page_without_figures(quick_site, tmp_path):
    pytest.importorskip("playwright", reason="the browser check needs playwright (docs extra)")
    browser = site_check.find_browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    # the quick site's tutorials were not executed: their pages have no figure to show
    report = site_check.check_page(quick_site / "tutorials" / "01_first_push.html", browser,
                                   tmp_path / "shots", 1)
    assert report["png_figures"] == 0 and not report["ok"]
