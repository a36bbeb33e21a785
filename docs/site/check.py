"""Check the built site in a real browser (issue 16): ``make docs-check``.

Opens a tutorial page of the built site (``--site``, default ``build/site``; page
``tutorials/01_first_push.html``) in headless Chromium through Playwright, waits until it has
loaded, and checks that its figures are **shown**: the page's notebook images are decoded
(``naturalWidth > 0``), laid out at a visible size, and at least ``--min-figures`` of them (by
default the number of figures in the page's notebook). It saves a full-page screenshot and one
of the first figure as it appears on screen (``--shots``, default ``build/site_check``), to look
at.

The browser: ``--browser PATH``, else ``$CHROMIUM``, else the first of ``chromium``,
``chromium-browser``, ``google-chrome`` on the PATH (Debian: ``apt-get install chromium``).
Playwright (PyPI) drives it; it downloads nothing at run time with an executable given.
Exit status 0 when every check passes, 1 otherwise, 2 when no browser can run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

#: What the page reports about its images (run in the browser).
_FIGURES_JS = """() => Array.from(document.querySelectorAll('img')).map(img => {
    const r = img.getBoundingClientRect();
    return {src: img.getAttribute('src').slice(0, 22), complete: img.complete,
            natural_width: img.naturalWidth, natural_height: img.naturalHeight,
            width: r.width, height: r.height,
            visible: getComputedStyle(img).visibility !== 'hidden'
                     && getComputedStyle(img).display !== 'none'};
})"""


def find_browser(path: str | None = None) -> str | None:
    """The Chromium executable to use, or None."""
    for candidate in (path, os.environ.get("CHROMIUM"), *BROWSERS):
        if candidate:
            found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if found:
                return found
    return None


def notebook_figures(notebook: Path) -> int:
    """PNG outputs in an executed notebook."""
    nb = json.loads(notebook.read_text())
    return sum(1 for c in nb.get("cells", []) for o in c.get("outputs", [])
               if "image/png" in o.get("data", {}))


def check_page(page_file: Path, browser: str, shots: Path, min_figures: int) -> dict:
    """Load ``page_file`` in headless ``browser``; the figures' report and the checks."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
            images = page.evaluate(_FIGURES_JS)
            figures = [i for i in images if i["src"].startswith("data:image/png")]
            shown = [i for i in figures if i["natural_width"] > 0 and i["width"] >= 100
                     and i["height"] >= 50 and i["visible"]]
            page.screenshot(path=str(shots / "page.png"), full_page=True)
            first = page.locator("img[src^='data:image/png']").first
            if figures:
                first.scroll_into_view_if_needed()
                page.screenshot(path=str(shots / "first_figure_in_view.png"))
                first.screenshot(path=str(shots / "first_figure.png"))
        finally:
            b.close()
    return {"page": str(page_file), "images": len(images), "png_figures": len(figures),
            "shown": len(shown), "min_figures": min_figures,
            "ok": len(shown) >= max(min_figures, 1) and len(shown) == len(figures),
            "screenshots": sorted(str(s) for s in shots.glob("*.png"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--site", default=str(ROOT / "build" / "site"))
    ap.add_argument("--page", default="tutorials/01_first_push.html")
    ap.add_argument("--shots", default=str(ROOT / "build" / "site_check"))
    ap.add_argument("--min-figures", type=int, default=None,
                    help="default: the figures of the page's notebook in the site")
    ap.add_argument("--browser", help="Chromium executable (default: $CHROMIUM or the PATH)")
    args = ap.parse_args(argv)
    site = Path(args.site)
    page_file = site / args.page
    if not page_file.is_file():
        print(f"{page_file} does not exist: build the site first (make docs).", file=sys.stderr)
        return 1
    browser = find_browser(args.browser)
    if browser is None:
        print("No Chromium found (apt-get install chromium, or --browser PATH).", file=sys.stderr)
        return 2
    minimum = args.min_figures
    if minimum is None:
        nb = page_file.with_suffix(".ipynb")
        minimum = notebook_figures(nb) if nb.is_file() else 1
    report = check_page(page_file, browser, Path(args.shots), minimum)
    print(json.dumps(report, indent=2))
    if not report["ok"]:
        print(f"FAILED: {report['shown']} of {report['png_figures']} figures shown "
              f"(at least {max(minimum, 1)} expected).", file=sys.stderr)
        return 1
    print(f"OK: {report['shown']} figures shown on {args.page}; screenshots in {args.shots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
