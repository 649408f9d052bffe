"""Second factors in a real browser: an authenticator app set up from the
account page with codes computed by pyotp from the page's otpauth URI, and
passkeys with Chromium's built-in virtual authenticator (CDP WebAuthn
domain: ctap2, internal transport, resident keys, user verification).

The servers are on http://localhost:PORT: passkeys need a domain name."""

import re
import tempfile
import time
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import expect

from conftest import PASSWORD, Tessera


@pytest.fixture(scope="module")
def replicas():
    """Two replicas of one deployment (one SQLite file, one public URL, one
    factor key): a ceremony may start on one and finish on the other."""
    with tempfile.TemporaryDirectory() as workdir:
        first = Tessera(Path(workdir), host="localhost")
        second = Tessera(Path(workdir), host="localhost", public_url=first.url)
        yield first, second
        second.stop()
        first.stop()


def sign_in_to_account(page, server, username):
    page.goto(f"{server.url}/account")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_an_authenticator_app_from_the_account_page(replicas, browser, screenshots):
    server, other = replicas
    server.register("tanya")
    context = browser.new_context()
    page = context.new_page()
    sign_in_to_account(page, server, "tanya")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_role("link", name="Set up authenticator app").click()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    page.get_by_text("Can't scan it?").click()
    uri = page.locator("a[data-otpauth-uri]").get_attribute("href")
    totp = pyotp.parse_uri(uri)
    assert uri.startswith("otpauth://totp/") and "tanya" in uri, uri
    page.get_by_label("Code").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator("ol.codes code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    page.screenshot(path=screenshots / "recovery-codes.png", full_page=True)

    # A new browser: password on one replica, the code on the other.
    fresh = browser.new_context()
    page = fresh.new_page()
    sign_in_to_account(page, server, "tanya")
    expect(page.get_by_role("heading", name="Verify it's you")).to_be_visible()
    page.screenshot(path=screenshots / "second-factor.png", full_page=True)
    page.goto(f"{other.url}/sign-in/factor")
    page.get_by_label("Code").fill(totp.now())  # used at enrolment: refused
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("Code").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()

    # A recovery code works once.
    for attempt in range(2):
        again = browser.new_context().new_page()
        sign_in_to_account(again, server, "tanya")
        again.get_by_label("Code").fill(codes[0])
        again.get_by_role("button", name="Verify").click()
        if attempt == 0:
            expect(again.get_by_role("heading", name="Your account")).to_be_visible()
            expect(again.get_by_text("9 of 10 left")).to_be_visible()
        else:
            expect(again.get_by_role("alert")).to_contain_text("not valid")


def virtual_authenticator(page, user_verification=True):
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    created = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": user_verification,
                "isUserVerified": user_verification,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, created["authenticatorId"]


def sign_out(page, server):
    page.context.clear_cookies()
    page.goto(f"{server.url}/sign-in")


def test_passkeys_register_sign_in_without_a_username_and_stop_when_removed(
    replicas, browser, screenshots
):
    server, other = replicas
    server.register("paulo")
    context = browser.new_context()
    page = context.new_page()
    cdp, authenticator = virtual_authenticator(page)
    sign_in_to_account(page, server, "paulo")
    page.get_by_label("Passkey name").fill("Work laptop")
    page.get_by_role("button", name="Add passkey").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    page.get_by_role("link", name=re.compile("back to my account")).click()
    expect(page.get_by_text("Work laptop")).to_be_visible()
    page.screenshot(path=screenshots / "account-with-passkey.png", full_page=True)
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1
    assert credentials["credentials"][0]["isResidentCredential"], "discoverable"

    # Signed out, no username typed: the passkey names the account. The
    # options come from the other replica, the answer goes to this one.
    sign_out(page, server)
    page.route(
        "**/passkeys/options",
        lambda route: route.fulfill(
            response=route.fetch(url=f"{other.url}/passkeys/options")
        ),
    )
    posted = []
    page.on(
        "request",
        lambda request: posted.append(request.post_data)
        if request.url.endswith("/sign-in/passkey")
        else None,
    )
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Since .* · passkey$"))).to_be_visible()
    page.unroute("**/passkeys/options")

    # The same answer again: its challenge was spent.
    assert posted, "the form was posted"
    replayed = context.request.post(
        f"{server.url}/sign-in/passkey",
        data=posted[0],
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        max_redirects=0,
    )
    assert replayed.status == 401, replayed.status

    # As the second step after a password.
    sign_out(page, server)
    page.get_by_label("Username or email").fill("paulo")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Verify it's you")).to_be_visible()
    page.get_by_role("button", name="Use your passkey").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()

    # Without user verification, a passkey alone is refused by the server:
    # the page is made to ask for none, the authenticator does none.
    sign_out(page, server)
    cdp.send(
        "WebAuthn.setUserVerified",
        {"authenticatorId": authenticator, "isUserVerified": False},
    )
    page.evaluate(
        """() => {
        const get = navigator.credentials.get.bind(navigator.credentials);
        navigator.credentials.get = (options) => {
            options.publicKey.userVerification = "discouraged";
            return get(options);
        };
    }"""
    )
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", name="Passkey not accepted")).to_be_visible()
    cdp.send(
        "WebAuthn.setUserVerified",
        {"authenticatorId": authenticator, "isUserVerified": True},
    )

    # Removed: it no longer signs in.
    sign_out(page, server)
    sign_in_to_account(page, server, "paulo")
    # The second step offers the passkey.
    page.get_by_role("button", name="Use your passkey").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_role("button", name="Remove passkey Work laptop").click()
    expect(page.get_by_text("Work laptop")).to_have_count(0)
    sign_out(page, server)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", name="Passkey not accepted")).to_be_visible()


def test_pages_on_a_phone(replicas, browser, screenshots):
    server, _ = replicas
    server.register("phoebe")
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    sign_in_to_account(page, server, "phoebe")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"no sideways scrolling: {width}"
    page.screenshot(path=screenshots / "account-phone.png", full_page=True)
    page.get_by_role("link", name="Set up authenticator app").click()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"no sideways scrolling: {width}"
    page.screenshot(path=screenshots / "totp-phone.png", full_page=True)
