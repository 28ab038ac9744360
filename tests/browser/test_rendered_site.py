"""The committed static site (site/, built by ``make site``) in headless Chromium, from file://:
the index lists every lesson and its link opens the lesson's page, whose figures and explorer
still a reader sees."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "site"
LESSONS = sorted(path.stem for path in (REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))
# A lesson with an explorer, so that its still is seen too.
LESSON = "05_mixing_estimator"
LOAD_TIMEOUT_MS = 30_000
SHOWN = """(image) => image.complete && image.naturalWidth > 0
    && image.getBoundingClientRect().width > 0"""


@pytest.fixture
def site_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def _assert_shown(locator) -> None:
    """The first element of ``locator`` is on screen once scrolled to, and, for an image, decoded
    with a size."""
    element = locator.first
    element.scroll_into_view_if_needed(timeout=LOAD_TIMEOUT_MS)
    assert element.is_visible()
    assert element.evaluate(SHOWN)


def test_the_index_opens_a_lesson_that_shows_its_figures(site_page):
    # domcontentloaded: the pages' MathJax comes from a CDN, which an offline run never reaches.
    site_page.goto((SITE / "index.html").as_uri(), wait_until="domcontentloaded")
    hrefs = site_page.locator("table a").evaluate_all("links => links.map(a => a.href)")
    assert [href.rsplit("/", 1)[-1] for href in hrefs] == [f"{stem}.html" for stem in LESSONS]

    site_page.locator(f'table a[href="{LESSON}.html"]').click(no_wait_after=True)
    site_page.wait_for_url(f"**/{LESSON}.html", wait_until="domcontentloaded")
    _assert_shown(site_page.locator('img[src^="data:image/png;base64,"]'))
    _assert_shown(site_page.locator(".widget-still img"))
    assert site_page.get_by_text("its controls move").first.is_visible()
