"""The report page opened in a real browser: images, links, width, screenshot.

Headless Chromium (Debian's ``chromium`` package; ``chromium-browser`` or
``google-chrome`` where that is what is installed) loads a copy of
``index.html`` with a small script added that records, once the page has
loaded, every image's natural and shown width, every in-page link and
whether its target exists, and the page's scroll width; ``--dump-dom``
prints the page with that record in it. The test skips, saying why, where
no such browser is installed.

A screenshot of the top of each page is saved in the folder named by
``GMMLAB_SCREENSHOT_DIR`` (the test's temporary folder otherwise) and its
path printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.report import build_report
from experiments.report.figures.style import FIGURE_WIDTH_PX

from gmm_helpers import record_sweep, report_sweep

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

SWEEP = report_sweep(root_seed=7)

#: Added before ``</body>``: the page's own record of what loaded and fits.
_CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  function clipped(element) {
    for (var e = element.parentElement; e && e !== document.body; e = e.parentElement) {
      var overflow = getComputedStyle(e).overflowX;
      if (overflow === "auto" || overflow === "scroll" || overflow === "hidden") {
        return true;
      }
    }
    return false;
  }
  var limit = document.documentElement.clientWidth;
  var wide = [];
  document.querySelectorAll("body *").forEach(function (e) {
    if (e.getBoundingClientRect().right > limit + 0.5 && !clipped(e)) {
      wide.push(e.tagName + "." + (e.className || "") + "#" + (e.id || ""));
    }
  });
  var record = {
    images: Array.from(document.images).map(function (img) {
      return {src: img.getAttribute("src"), complete: img.complete,
              natural: img.naturalWidth, shown: img.clientWidth};
    }),
    links: Array.from(document.querySelectorAll('a[href^="#"]')).map(function (a) {
      var id = decodeURIComponent(a.getAttribute("href").slice(1));
      var target = document.getElementById(id);
      return {href: a.getAttribute("href"), found: target !== null};
    }),
    headings: Array.from(document.querySelectorAll("h2[id], h3[id]")).map(
      function (h) { return h.id; }),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    wide: wide.slice(0, 20)
  };
  var out = document.createElement("pre");
  out.id = "browser-check";
  out.hidden = true;
  out.textContent = JSON.stringify(record);
  document.body.appendChild(out);
});
</script>
"""


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no headless browser found (looked for " + ", ".join(BROWSERS) + " on "
        "PATH); install Debian's chromium package (`apt-get install -y "
        "chromium`) to run the report's browser checks"
    )


def _headless(browser: str, width: int, height: int, *arguments: str) -> str:
    """Run the browser headless at a window size; return what it printed."""
    command = [
        browser,
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox will not start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        "--allow-file-access-from-files",
        f"--window-size={width},{height}",
        "--virtual-time-budget=20000",
        *arguments,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _page_record(browser: str, index: Path, width: int) -> dict:
    """What the page reports about itself, loaded at ``width`` pixels."""
    page = index.read_text()
    checked = index.with_name("_browser_check.html")
    checked.write_text(page.replace("</body>", _CHECK_SCRIPT + "</body>"))
    try:
        dom = _headless(browser, width, 900, "--dump-dom", checked.as_uri())
    finally:
        checked.unlink()
    found = re.search(r'<pre id="browser-check"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, "the checking script did not run: " + dom[-500:]
    return json.loads(html.unescape(found[1]))


@pytest.fixture(scope="module")
def browser() -> str:
    return _browser()


@pytest.fixture(scope="module")
def pages(browser, tmp_path_factory) -> dict[str, Path]:
    """A sweep's report and a ``gmmlab fit`` report of 13-column data."""
    from sklearn.datasets import load_wine

    folder = tmp_path_factory.mktemp("browser")
    results = record_sweep(folder, SWEEP, echo=print)
    sweep = build_report(results, folder / "sweep")
    wine = load_wine(as_frame=True).frame
    csv = folder / "wine.csv"
    wine.assign(target=wine["target"].astype(str)).to_csv(csv, index=False)
    arguments = ["fit", "--jobs", "1", str(csv), "--components", "1..2"]
    arguments += ["--models", "VVV,VVI,EEE", "--label", "target", "--seeds", "1"]
    arguments += ["--out", str(folder / "fit"), "--no-progress"]
    assert main(arguments) == 0
    return {"sweep": sweep, "fit": folder / "fit" / "index.html"}


@pytest.mark.parametrize("name", ["sweep", "fit"])
def test_the_page_loads_links_and_fits_its_window(browser, pages, name):
    index = pages[name]
    for width in (1280, 720):
        record = _page_record(browser, index, width)
        assert record["images"], "the report should have figures"
        broken = [i["src"] for i in record["images"] if i["natural"] == 0]
        assert broken == [], f"images that did not load at {width} px"
        dangling = [link["href"] for link in record["links"] if not link["found"]]
        assert dangling == [], "in-page links without a target"
        # The contents link every section and subsection.
        targets = {link["href"].removeprefix("#") for link in record["links"]}
        opening = {"what-this-sweep-shows", "contents"}
        assert set(record["headings"]) - opening <= targets
        assert record["scrollWidth"] <= record["innerWidth"], (
            f"the page is wider than a {width} px window: {record['wide']}"
        )
        if width == 1280:
            # Every figure is drawn at the content column's width and shown
            # at its natural size: its type is as legible as it was drawn.
            sizes = {(i["natural"], i["shown"]) for i in record["images"]}
            assert sizes == {(FIGURE_WIDTH_PX, FIGURE_WIDTH_PX)}


@pytest.mark.parametrize("name", ["sweep", "fit"])
def test_a_screenshot_of_the_page(browser, pages, name, tmp_path):
    folder = Path(os.environ.get("GMMLAB_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"report-{name}.png"
    shot.unlink(missing_ok=True)
    _headless(browser, 1280, 2400, f"--screenshot={shot}", pages[name].as_uri())
    assert shot.is_file()
    assert shot.stat().st_size > 10_000
    print(f"screenshot of the {name} report: {shot}")
