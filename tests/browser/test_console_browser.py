"""An on-call engineer's night in the console, in headless Chromium against a live receiver."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from tests.browser.conftest import ADMIN_TOKEN, SERVICE, Console

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll `probe` until it answers something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def css(console: Console, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(console.driver.find_elements(By.CSS_SELECTOR, selector))


def one(console: Console, selector: str) -> Any:
    found = css(console, selector)
    assert len(found) == 1, (
        f"{len(found)} elements match {selector} on {console.driver.current_url}"
    )
    return found[0]


def test_sign_in_approve_reject_blackout_services_and_sign_out(live_console: Console) -> None:
    """The whole console flow; no request leaves the origin and the console logs no error."""
    console = live_console
    first = console.post_trigger("b0000000000000a1")
    second = console.post_trigger("b0000000000000a2")
    assert first["decision"] == second["decision"] == "pending_approval", (first, second)
    approve_id, reject_id = first["rollback_id"], second["rollback_id"]

    # A Slack link to the approvals page survives the sign-in.
    console.open("/ui/approvals")
    assert "/ui/login" in console.driver.current_url
    console.screenshot("login")
    one(console, "input[name=token]").send_keys(ADMIN_TOKEN)
    one(console, "[data-action=sign-in]").click()
    wait_for("the approvals page", lambda: console.driver.current_url.endswith("/ui/approvals"))
    assert one(console, "[data-actor]").text == "admin"
    one(console, f'section[data-rollback-id="{approve_id}"]')
    one(console, f'section[data-rollback-id="{reject_id}"]')
    console.screenshot("approvals")

    # Approve one with a comment and watch its page (meta refresh) reach completed.
    row = one(console, f'section[data-rollback-id="{approve_id}"]')
    row.find_element("css selector", "input[name=comment]").send_keys("bad deploy at 03:00")
    row.find_element("css selector", "[data-action=approve]").click()
    wait_for(
        "the rollback page", lambda: f"/ui/rollbacks/{approve_id}" in console.driver.current_url
    )
    wait_for(
        "the approved rollback to complete",
        lambda: css(console, f'p[data-rollback-id="{approve_id}"][data-state="completed"]'),
        timeout=30,
    )
    assert css(console, "svg.timeline g[data-stage][data-outcome=ok]")
    console.screenshot("rollback")

    # Reject the other.
    console.open("/ui/approvals")
    row = one(console, f'section[data-rollback-id="{reject_id}"]')
    row.find_element("css selector", "[data-action=reject]").click()
    wait_for(
        "the rejected rollback page",
        lambda: css(console, f'p[data-rollback-id="{reject_id}"][data-state="rejected"]'),
    )
    console.open("/ui/approvals")
    assert css(console, "[data-empty]") and not css(console, "section[data-rollback-id]")

    # History shows both, newest first, with their states.
    console.open("/ui/")
    rows = css(console, "tr[data-rollback-id]")
    states = {r.get_attribute("data-rollback-id"): r.get_attribute("data-state") for r in rows}
    assert states == {approve_id: "completed", reject_id: "rejected"}
    console.screenshot("history")

    # A blackout made here is a real Alertmanager silence; end it again.
    console.open("/ui/blackouts")
    one(console, "input[name=duration]").clear()
    one(console, "input[name=duration]").send_keys("2h")
    one(console, "input[name=comment]").send_keys("database migration")
    one(console, "[data-action=create]").click()
    silence = wait_for("the new blackout in the list", lambda: css(console, "tr[data-silence-id]"))
    silence_id = silence[0].get_attribute("data-silence-id")
    assert "database migration" in silence[0].text
    listed = console.alertmanager.url + "/api/v2/silences"
    active = [s for s in requests.get(listed, timeout=5).json() if s["status"]["state"] == "active"]
    assert [s["id"] for s in active] == [silence_id]
    console.screenshot("blackouts")
    # The services page says the silence holds the service back, and shows the cooldown.
    console.open("/ui/services")
    service = one(console, f'tr[data-service="{SERVICE}"]')
    assert service.find_element("css selector", "[data-field=cooldown]").text not in ("", "none")
    assert service.find_element("css selector", "[data-field=hour]").text == "1 / 1"
    assert "silenced by" in service.find_element("css selector", "[data-field=blackout]").text
    assert service.find_element("css selector", "[data-field=budget]").text == "unknown"
    console.screenshot("services")
    console.open("/ui/blackouts")
    one(console, f'tr[data-silence-id="{silence_id}"] [data-action=end]').click()
    wait_for("the blackout to end", lambda: css(console, "[data-notice]"))
    assert not css(console, "tr[data-silence-id]")

    # Sign out (a POST); the console asks for the token again.
    one(console, "[data-action=sign-out]").click()
    wait_for("the sign-in page", lambda: console.driver.current_url.endswith("/ui/login"))
    console.open("/ui/")
    assert "/ui/login" in console.driver.current_url

    # Everything came from the receiver itself, and nothing went wrong in the page.
    urls = console.requested_urls()
    assert urls, "the performance log recorded no request"
    foreign = [u for u in urls if not u.startswith(console.url + "/") and not u.startswith("data:")]
    assert foreign == []
    assert console.console_errors() == []
