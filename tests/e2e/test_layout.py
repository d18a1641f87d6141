"""The top bar fits the window for every kind of user: the longest menus (a manager's, a
quality manager's) wrap instead of pushing "Log out" off the screen, and an applicant's
portal fits a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.e2e.test_certification_journey import log_in

LANDING_PAGES = {
    "manager": "/dashboard",
    "quality": "/records/retention",
    "admin": "/inbox",
    "owner": "/models",
    "clerk": "/inbox",
    "alice": "/portal",
}


def header_fits(page: Page) -> None:
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.querySelector('header.topbar').scrollWidth") <= width
    log_out = page.get_by_role("button", name="Log out").bounding_box()
    header = page.locator("header.topbar").bounding_box()
    assert log_out["x"] >= 0 and log_out["x"] + log_out["width"] <= width
    assert header["y"] <= log_out["y"] and log_out["y"] + log_out["height"] <= (
        header["y"] + header["height"]
    ), "Log out lies outside the top bar"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_every_users_top_bar_fits_a_small_laptop_screen(browser, live_server):
    width = 1024
    for username, path in LANDING_PAGES.items():
        context = browser.new_context(viewport={"width": width, "height": 800})
        page = context.new_page()
        try:
            log_in(page, live_server, username)
            page.goto(live_server + path)
            header_fits(page)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (
                f"{username}'s {path} is wider than a {width}px window"
            )
        finally:
            context.close()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_an_applicants_portal_fits_a_phone(browser, live_server):
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    try:
        log_in(page, live_server, "alice")
        page.goto(live_server + "/portal")
        header_fits(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
