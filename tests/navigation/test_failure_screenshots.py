"""Failure and ``screenshot`` step captures show no secret, on a real Chromium and the fixture site.

The proof is visual: the capture of a page holding a secret must be
pixel-equal to a capture of the same page holding a same-length run of
``•`` (what the redaction paints), and must differ from a capture of the
page showing the value in clear.  Set ``DROVER_ARTIFACTS`` to keep one
redacted failure screenshot (``redacted-failure.png``) for a human look.
No assertion here prints the secret when it fails.
"""
from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import orjson
import pytest

from navigation.credentials import CredentialStore
from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.steps import default_registry

# A space, & < > and a non-ASCII letter: its JSON, URL and HTML forms all differ from the clear text.
SECRET = "s3cr3t Välue&<42>"
BULLETS = "\u2022" * len(SECRET)
STORE = CredentialStore({"pw": SECRET})


def run(conn, site, artifacts: Path, steps, **runner_args):
    flow = parse_flow({"title": "t", "steps": steps}, source="redaction-flow.json")
    runner = FlowRunner(default_registry(), resolve_secret=STORE.resolve, **runner_args)
    return runner.run(flow, conn, artifacts_dir=artifacts, variables={"BASE_URL": site.base_url})


def typed_then_failing(value) -> list[dict]:
    """Type ``value`` into an input, a textarea and a contenteditable; the page echoes the input as text."""
    return [
        {"type": "navigate", "url": "${BASE_URL}/echo.html"},
        {"type": "change", "selectors": [["#typed"]], "value": value},
        {"type": "change", "selectors": [["#notes"]], "value": value},
        {"type": "change", "selectors": [["#pad"]], "value": value},
        {"type": "waitForExpression",
         "expression": f"document.querySelector('#echo').textContent.length === {len(SECRET)}"},
        {"type": "waitForElement", "selectors": [["#never-there"]], "timeout": 300},
    ]


def artifact(result, suffix: str) -> bytes:
    paths = [p for p in result.artifacts if p.endswith(suffix)]
    assert len(paths) == 1, result.artifacts
    return Path(paths[0]).read_bytes()


_DIFF = """
(async (a, b) => {
  const pixels = async (png) => {
    const img = new Image();
    img.src = "data:image/png;base64," + png;
    await img.decode();
    const canvas = new OffscreenCanvas(img.width, img.height);
    const g = canvas.getContext("2d");
    g.drawImage(img, 0, 0);
    return g.getImageData(0, 0, img.width, img.height);
  };
  const [x, y] = [await pixels(a), await pixels(b)];
  if (x.width !== y.width || x.height !== y.height) return -1;
  let diff = 0;
  for (let i = 0; i < x.data.length; i += 4) {
    if (x.data[i] !== y.data[i] || x.data[i + 1] !== y.data[i + 1] || x.data[i + 2] !== y.data[i + 2]) diff++;
  }
  return diff;
})(%s, %s)
"""


def differing_pixels(conn, a: bytes, b: bytes) -> int:
    """How many pixels differ between two PNGs, decoded by Chromium itself."""
    session = conn.new_page("about:blank")
    try:
        encoded = [orjson.dumps(base64.b64encode(png).decode()).decode() for png in (a, b)]
        return session.evaluate(_DIFF % tuple(encoded), await_promise=True, timeout=30)
    finally:
        session.close(timeout=5)


def test_failure_screenshot_hides_a_typed_and_echoed_secret(conn, site, tmp_path):
    redacted = run(conn, site, tmp_path / "secret", typed_then_failing({"secret": "pw"}))
    assert not redacted.ok and redacted.failed_step == 5, redacted.error
    dom = artifact(redacted, ".html")
    assert "***" in dom.decode("utf-8")  # the echo was there, masked as text
    # Every form the store knows (clear, JSON-escaped, URL-encoded, HTML-escaped); computed before the
    # assert so that a failure never prints the secret.
    leaked = [i for i, form in enumerate(STORE.redactor().forms) if form.encode() in dom]
    assert leaked == [], "forms of the secret (by index) in the DOM snapshot"
    png = artifact(redacted, ".png")
    in_png = SECRET.encode() in png
    assert not in_png

    bullets = run(conn, site, tmp_path / "bullets", typed_then_failing(BULLETS))
    clear = run(conn, site, tmp_path / "clear", typed_then_failing(SECRET))  # a literal: nothing to hide
    assert not bullets.ok and not clear.ok
    assert differing_pixels(conn, png, artifact(bullets, ".png")) == 0, "the redacted capture is not all bullets"
    assert differing_pixels(conn, png, artifact(clear, ".png")) > 100, "the capture shows no text at all"

    keep = os.environ.get("DROVER_ARTIFACTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copyfile([p for p in redacted.artifacts if p.endswith(".png")][0],
                        os.path.join(keep, "redacted-failure.png"))


def test_screenshot_step_hides_the_secret_and_the_page_keeps_its_values(conn, site, tmp_path):
    def steps(value, bullets: bool):
        return typed_then_failing(value)[:5] + [
            {"type": "screenshot", "name": "shot.png"},
            # After the capture the page holds the typed value again (bullets only where bullets were typed).
            {"type": "waitForExpression", "expression":
                "(() => { const v = document.querySelector('#typed').value;"
                " return v.length === %d && v.includes('\\u2022') === %s && v === document.querySelector('#notes').value"
                " && v === document.querySelector('#echo').textContent"
                " && v === document.querySelector('#pad').textContent; })()" % (len(SECRET), str(bullets).lower())},
        ]

    shot = run(conn, site, tmp_path / "secret", steps({"secret": "pw"}, False))
    assert shot.ok, shot.error
    bullets = run(conn, site, tmp_path / "bullets", steps(BULLETS, True))
    assert bullets.ok, bullets.error
    png = (tmp_path / "secret" / "shot.png").read_bytes()
    assert differing_pixels(conn, png, (tmp_path / "bullets" / "shot.png").read_bytes()) == 0


def test_failure_screenshots_can_be_turned_off_and_the_dom_is_still_written(conn, site, tmp_path):
    result = run(conn, site, tmp_path / "a", typed_then_failing({"secret": "pw"}), failure_screenshots=False)
    assert not result.ok and result.failed_step == 5
    assert [Path(p).name for p in result.artifacts] == ["step-05-waitForElement-failure.html"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["step-05-waitForElement-failure.html"]
    in_dom = SECRET.encode() in artifact(result, ".html")
    assert not in_dom
