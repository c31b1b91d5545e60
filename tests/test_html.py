"""The one-file HTML report: self-contained (no network), complete, and working in a real
headless Chromium (no console error, something drawn, no request made)."""

from __future__ import annotations

import sys
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

import tests.helpers.results as rf
from cnnbench.cli import app
from tests.helpers import browser

pytest.importorskip("plotly")

ROWS = (rf.grid("sgd", {0.01: [0.5, 0.6], 0.1: [0.9, 0.8], 1.0: [None, None]})
        + rf.grid("adam", {0.01: [0.9, 0.95], 0.1: [0.7, None]})
        + rf.grid("sgd", {0.01: [0.3, 0.3], 0.1: [0.6, 0.5]}, model="cnn")
        + rf.grid("adam", {0.01: [0.4, 0.4], 0.1: [0.2, 0.3]}, model="cnn"))


class _Links(HTMLParser):
    """Every src/href of the page's elements (script bodies are text to the parser: the links
    plotly.js carries for map tiles it never draws here are not elements)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = rf.write(tmp_path_factory.mktemp("results") / "hand",
                      rf.runs(*ROWS, ).assign(torch_version="2.13.0", host="box"))
    result = CliRunner().invoke(app, ["report", str(folder), "--format", "html"])
    assert result.exit_code == 0, result.output
    return folder / "report.html"


def test_the_page_holds_every_section_and_the_runs_behind_the_points(page):
    text = page.read_text(encoding="utf-8")
    for heading in ("Best learning rate per group", "LR sensitivity",
                    "Learning curves at the best lr", "Time vs accuracy", "Performance profile",
                    "Protocol", "Environment"):
        assert f"<h2>{heading}</h2>" in text
    assert "mlp-sgd-0.1-1" in text  # a run's id, shown when its point is hovered
    assert "2.13.0" in text and "box" in text  # the environment


def test_the_page_is_self_contained(page):
    text = page.read_text(encoding="utf-8")
    parsed = _Links()
    parsed.feed(text)
    assert "script" in parsed.tags and "table" in parsed.tags
    assert parsed.links == []  # nothing to fetch: no src, no href at all
    assert "link" not in parsed.tags and "@import" not in text
    assert "Plotly" in text and len(text) > 1_000_000  # plotly.js inline


def test_output_names_the_file(page, tmp_path):
    target = tmp_path / "share" / "r.html"
    result = CliRunner().invoke(app, ["report", str(page.parent), "--format", "html",
                                      "--output", str(target)])
    assert result.exit_code == 0 and target.is_file() and f"wrote {target}" in result.output


def test_without_plotly_the_hint_names_the_extra(page, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)  # what an absent package looks like
    result = CliRunner().invoke(app, ["report", str(page.parent), "--format", "html"])
    assert result.exit_code == 2 and "pip install 'cnnbench[html]'" in result.output
    assert "Traceback" not in result.output


needs_chromium = pytest.mark.skipif(browser.chromium() is None,
                                    reason="no chromium binary on this machine")


@pytest.mark.subprocess
@needs_chromium
def test_the_browser_catches_errors_and_requests_of_a_bad_page(tmp_path):
    """The checks below can fail: a page with an error and a remote image trips both."""
    bad = tmp_path / "bad.html"
    bad.write_text('<p>x</p><img src="http://example.com/x.png">'
                   '<script>console.error("boom"); not_defined();</script>')
    seen = browser.load(bad, tmp_path / "bad.png")
    assert any("boom" in line for line in seen.console_errors)
    assert any("not_defined" in line for line in seen.console_errors)
    assert seen.requests == ["GET http://example.com/x.png"]
    assert browser.ink_share(seen.screenshot) < 0.001


@pytest.mark.subprocess
@needs_chromium
def test_the_report_loads_in_chromium_without_errors_or_network(page, tmp_path):
    seen = browser.load(page, tmp_path / "report.png")
    assert seen.console_errors == []
    assert seen.requests == []
    assert browser.ink_share(seen.screenshot) > 0.01  # not blank
    assert browser.colour_share(seen.screenshot) > 0.001  # the series are drawn
