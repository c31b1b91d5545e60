"""A real headless Chromium for the HTML report's tests: load a file, collect its console errors
and every network request it tries (through a counting proxy), and take a screenshot."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium's own service traffic (updates, clock, sign-in), which no page asked for
BROWSER_HOSTS = ("update.googleapis.com", "clients2.google.com", "accounts.google.com",
                 "optimizationguide-pa.googleapis.com", "safebrowsing.googleapis.com")
MARK = "cnnbench-console-error"
# Chromium's log shows console messages without their level: mark the errors to find them
SPY = (f"<script>(function () {{ const log = console.log.bind(console);"
       f" console.error = (...a) => log('{MARK}', ...a);"
       f" window.addEventListener('error', e => log('{MARK}', e.message)); }})();</script>")


def chromium() -> str | None:
    return next((found for name in BINARIES if (found := shutil.which(name))), None)


@dataclass(frozen=True)
class PageLoad:
    console_errors: list[str]
    requests: list[str]  # what the page asked the network for (the proxy saw it)
    screenshot: Path


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def _record(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_CONNECT = _record

    def log_message(self, *args) -> None:  # quiet
        pass


def load(page: Path, screenshot: Path, *, width: int = 1200, height: int = 1600,
         timeout_s: float = 120.0) -> PageLoad:
    """Open `page` in headless Chromium with every request sent to a local proxy that records
    it; return the console errors, the requests and the screenshot's path."""
    spied = screenshot.with_suffix(".spied.html")
    spied.write_text(SPY + page.read_text(encoding="utf-8"), encoding="utf-8")
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        run = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--enable-logging=stderr", "--v=0",
             f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}",
             "--proxy-bypass-list=<-loopback>", f"--window-size={width},{height}",
             "--virtual-time-budget=10000", f"--screenshot={screenshot}",
             spied.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout_s, check=False)
    finally:
        proxy.shutdown()
    errors = [line for line in run.stderr.splitlines()
              if ":CONSOLE" in line and (MARK in line or "Uncaught" in line)]
    asked = [r for r in seen if not any(host in r.split()[1] for host in BROWSER_HOSTS)]
    return PageLoad(errors, asked, screenshot)


def _pixels(png: Path):
    import matplotlib.image

    return matplotlib.image.imread(png)[..., :3]


def ink_share(png: Path) -> float:
    """The share of pixels that are not (nearly) white: 0 for a blank page."""
    return float((_pixels(png).min(axis=-1) < 0.9).mean())


def colour_share(png: Path) -> float:
    """The share of clearly coloured pixels (drawn series; text and grid lines are grey)."""
    pixels = _pixels(png)
    return float((pixels.max(axis=-1) - pixels.min(axis=-1) > 0.3).mean())
