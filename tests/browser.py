"""A real headless Chromium for the report tests, driven over the DevTools protocol on a pipe.

`open_page(path)` starts Debian's chromium (`apt-get install chromium`) with a fresh profile,
no network services and no sandbox (tests may run as root), opens the file, waits until the
page and every image have loaded, and returns what the browser rendered: the tables (rows of
cell texts), each image's decoded size and whether it is in view of the layout, and every URL
the page asked for. The protocol runs over `--remote-debugging-pipe` (fd 3: commands in, fd 4:
events out, messages ending in NUL), so no port is opened and no client library is needed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--remote-debugging-pipe",
)
TIMEOUT = 60.0

# Evaluated in the page once it has loaded: what a reader would see.
PROBE = """(() => {
  const tables = [...document.querySelectorAll('table')].map(t =>
    [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim())));
  const images = [...document.images].map(i => {
    const box = i.getBoundingClientRect();
    return {alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
            naturalHeight: i.naturalHeight, width: box.width, height: box.height,
            scheme: i.currentSrc.split(':')[0]};
  });
  const headings = [...document.querySelectorAll('h1,h2,h3,h4')].map(h => h.innerText.trim());
  return JSON.stringify({title: document.title, readyState: document.readyState, tables, images,
                         headings, scripts: document.scripts.length,
                         text: document.body.innerText});
})()"""


def chromium_binary() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium chromium-driver)")
    return binary


@dataclass
class RenderedPage:
    title: str
    tables: list[list[list[str]]]
    images: list[dict]
    headings: list[str]
    scripts: int
    text: str
    requested: list[str]  # every URL the page requested (the page itself included)


class _Pipe:
    """CDP messages over the browser's fds 3 / 4."""

    def __init__(self, binary: str, profile: str):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child sees our pipe ends as fd 3 (its input) and fd 4 (its output): copied above
        # 10 first, so that neither end is overwritten when one of them already is 3 or 4.
        def wire():
            high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=wire,  # noqa: PLW1509 - single-threaded test helper
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _receive(self) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("Chromium did not answer on its DevTools pipe")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass


def open_page(path: str | Path) -> RenderedPage:
    """Render a local HTML file in headless Chromium and report what it shows."""
    binary = require_chromium()
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            pipe.send("Network.enable", session=session)
            pipe.send("Page.enable", session=session)
            pipe.send("Page.navigate", {"url": url}, session=session)
            deadline = time.monotonic() + TIMEOUT
            while True:
                state = pipe.send("Runtime.evaluate", {
                    "expression": "document.readyState === 'complete' && [...document.images].every(i => i.complete)",
                    "returnByValue": True,
                }, session=session)
                if state.get("result", {}).get("value") is True:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not finish loading")
                time.sleep(0.1)
            probe = pipe.send("Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session=session)
            found = json.loads(probe["result"]["value"])
        finally:
            pipe.close()
    requested = [
        event["params"]["request"]["url"] for event in pipe.events
        if event.get("method") == "Network.requestWillBeSent"
    ]
    return RenderedPage(
        title=found["title"], tables=found["tables"], images=found["images"], headings=found["headings"],
        scripts=found["scripts"], text=found["text"], requested=requested,
    )
