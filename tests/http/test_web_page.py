"""The web page in a real browser: Debian's chromium, headless, driven by Playwright (the system browser,
no browser download). Load the page, upload an image, pick two methods, see two rendered maps, run a
job to its result pictures, plot the robustness history; no console errors. A screenshot is saved in
the test's temporary folder."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from glassbox.robustness.history import HistoryRecord
from glassbox.robustness.report import AttackAccuracy
from playwright.sync_api import Browser, Page, sync_playwright
from support.paths import ROOT
from support.servers import RunningServer

STAR = ROOT / "docs" / "images" / "star.png"
TIMEOUT_MS = 120_000


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Debian's chromium is missing: scripts/ensure-chromium.sh installs it (make install-test)"
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(start_server: Callable[..., RunningServer]) -> tuple[RunningServer, str]:
    running = start_server(http={"enabled": True, "address": "127.0.0.1:0"})
    epsilon = 8 / 255
    for index, (version, clean, robust) in enumerate([("1", 1.0, 0.45), ("1", 0.98, 0.4), ("2", 1.0, 0.2)]):
        attack = AttackAccuracy("pgd_linf", "Linf", epsilon, robust, 1 - robust, epsilon, 0.5, 16)
        record = HistoryRecord(
            "shapes", version, 1.7e9 + 3600 * index, "shapes-val", "schedule", 16, clean,
            (attack,), (), 0.01, (), f"job{index}",
        )  # fmt: skip
        running.server.history.append(record)
    return running, f"http://127.0.0.1:{running.server.http_port}"


@pytest.fixture
def page(browser: Browser, site: tuple[RunningServer, str]) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(site[1] + "/")
    page.wait_for_selector("body[data-ready=true]")
    yield page, problems
    context.close()


def wait_until(page: Page, selector: str, script: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    """Poll `script` (a function of the elements matching `selector`) until it returns true. Playwright's
    wait_for_function evaluates strings in the page, which the page's Content-Security-Policy forbids."""
    deadline = time.monotonic() + timeout_s
    while not page.eval_on_selector_all(selector, script):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {script} on {selector}")
        page.wait_for_timeout(100)


def rendered_images(page: Page, selector: str) -> int:
    """How many images matching `selector` have been decoded (naturalWidth > 0)."""
    return page.eval_on_selector_all(
        selector, "els => els.filter(e => e.complete && e.naturalWidth > 0).length"
    )


def test_upload_two_methods_job_and_history(page: tuple[Page, list[str]], tmp_path: Path) -> None:
    page, problems = page
    assert page.locator("#model option").count() >= 3
    assert "star" in page.inner_text("#model-info")  # the labels
    assert "64 × 64" in page.inner_text("#model-info")  # the input size

    page.set_input_files("#file", str(STAR))
    page.wait_for_selector("#prediction table")
    assert "star" in page.inner_text("#prediction").lower()

    for box in page.locator("#methods input").all():
        box.set_checked(box.get_attribute("value") in ("integrated_gradients", "grad_cam"))
    page.click("#explain")
    wait_until(page, ".map", "maps => maps.filter(m => m.getAttribute('aria-busy') === 'false').length === 2")
    wait_until(
        page, "img.rendered-map", "images => images.filter(i => i.complete && i.naturalWidth).length === 4"
    )
    assert rendered_images(page, "img.rendered-map") == 4
    captions = page.locator(".map figcaption").all_inner_texts()
    assert any(c.startswith("integrated_gradients") for c in captions)
    assert any(c.startswith("grad_cam") for c in captions)
    assert page.locator(".map .error").count() == 0
    widths = page.eval_on_selector_all("img.rendered-map", "els => els.map(e => e.naturalWidth)")
    assert all(width == 256 for width in widths), "64-pixel maps come as 256-pixel figures with a colour bar"

    page.fill("#opacity", "0.3")
    page.dispatch_event("#opacity", "input")
    assert page.eval_on_selector(".stack .over", "e => e.style.opacity") == "0.3"

    page.select_option("#target", "0")  # switch the target class: the maps are recomputed for "circle"
    wait_until(page, ".map figcaption", "captions => captions.every(c => c.textContent.includes('→ circle'))")

    page.select_option("#job-kind", "feature_visualisation")
    page.click("#run-job")
    wait_until(page, "#job-status", "status => status[0].textContent.includes('succeeded')")
    page.wait_for_selector("#job-result img.result-picture")
    assert rendered_images(page, "#job-result img.result-picture") >= 1

    page.click("#load-history")
    page.wait_for_selector("#history svg polyline")
    assert page.locator("#history svg polyline").count() == 2  # clean accuracy and the attack
    assert page.locator("#history svg circle").count() == 6

    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    assert problems == [], problems
    assert page.is_hidden("#error")


def test_a_failing_call_shows_its_message_not_a_console_error(page: tuple[Page, list[str]]) -> None:
    page, problems = page
    page.click("#explain")  # no image yet
    page.wait_for_selector("#error:not([hidden])")
    assert "choose an image first" in page.inner_text("#error")
    page.select_option("#model", "shapes-onnx")
    wait_until(page, "#model-info", "info => info[0].textContent.includes('onnxruntime')")
    methods = page.eval_on_selector_all("#methods input", "els => els.map(e => e.value)")
    assert "occlusion" in methods and "saliency" not in methods  # ONNX: forward-only methods
    assert problems == [], problems
