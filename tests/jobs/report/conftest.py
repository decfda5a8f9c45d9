"""A real headless browser for the report tests: Debian's chromium (installed by `make test`), driven by
Playwright, which downloads no browser of its own. A machine without chromium fails these tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip

# everything a timeline shows, read back from the page: Plotly's own data and computed points
READ_PLOTS = """async () => {
  await window.lwaffectReport.renderAll();
  return Array.from(document.querySelectorAll("div.plot")).map((d) => ({
    subject: d.dataset.subject, state: d.dataset.state, kind: d.classList.contains("timeline") ? "timeline" : "clip",
    traces: (d.data || []).map((t, i) => ({
      name: t.name, type: t.type, y: t.y, z: t.z,
      xs: t.type === "scatter" ? d.calcdata[i].map((p) => p.x) : null,
      x0: t.x0, dx: t.dx,
      drawn: t.type === "scatter" ? d.querySelectorAll(".scatterlayer .trace path.js-line").length : null,
    })),
    filled: ((d.layout || {}).shapes || []).filter((s) => s.name === "filled").map((s) => [s.x0, s.x1]),
    shaded: d.querySelectorAll(".layer-below .shapelayer path").length,
    meta: (d.layout || {}).meta,
  }));
}"""

READ_THUMBS = """() => Array.from(document.querySelectorAll(".moment")).map((m) =>
  Array.from(m.querySelectorAll("[data-subject]")).map((e) => ({
    subject: e.dataset.subject, frame: Number(e.dataset.frame), source: e.dataset.source,
    decoded: e.tagName === "IMG" && e.complete && e.naturalWidth > 0, note: e.textContent,
  })))"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("no chromium on this machine: `make browser` installs Debian's")
    return found


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_report(browser, path: Path) -> SimpleNamespace:
    """The report at `path` opened in a new page: the page, every request it made and its errors."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.resolve().as_uri())
    plots = page.evaluate(READ_PLOTS)
    return SimpleNamespace(page=page, requests=requests, errors=errors, plots=plots,
                           thumbs=page.evaluate(READ_THUMBS))  # fmt: skip
