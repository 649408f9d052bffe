"""The authorization-code flow in a real browser (headless Chromium), found
by the accessible names the contract lists, with a real OAuth client
library (Authlib) on the other end."""

import re
import secrets

import requests
from authlib.integrations.requests_client import OAuth2Session
from playwright.sync_api import expect

from conftest import PASSWORD, WEB_SECRET


def authlib_session(tessera, scope="openid email offline_access"):
    return OAuth2Session(
        client_id="webapp",
        client_secret=WEB_SECRET,
        scope=scope,
        redirect_uri=tessera.callback,
        code_challenge_method="S256",
    )


def start(tessera, session, **extra):
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(
        f"{tessera.url}/authorize", code_verifier=verifier, **extra
    )
    return url, state, verifier


def wait_for_callback(page, tessera):
    """Waits until the browser is back at the client; the URL it arrived at."""
    page.wait_for_url(re.compile(re.escape(tessera.callback) + ".*"))
    assert page.url in tessera.callbacks.seen, "the client's server saw the redirect"
    return page.url


def sign_in(page, login, password=PASSWORD):
    page.get_by_label("Username or email").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_authlib_completes_the_code_flow_without_javascript(tessera, browser, screenshots):
    tessera.register("alice")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    session = authlib_session(tessera)
    url, state, verifier = start(tessera, session)

    page.goto(url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Acme Web")).to_be_visible()
    expect(page.get_by_role("link", name="Create account")).to_be_visible()
    sign_in(page, "ALICE@example.org")

    expect(page.get_by_role("heading")).to_contain_text("Acme Web")
    expect(page.get_by_text("See your email address")).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    callback = wait_for_callback(page, tessera)

    token = session.fetch_token(
        f"{tessera.url}/token",
        authorization_response=callback,
        code_verifier=verifier,
    )
    assert token["token_type"].lower() == "bearer"
    assert "refresh_token" in token, token
    me = requests.get(
        f"{tessera.url}/users/me",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert me.json()["username"] == "alice"
    refreshed = session.refresh_token(f"{tessera.url}/token")
    assert refreshed["access_token"] != token["access_token"]

    # The browser is signed in and has consented: straight back with a code.
    url, _, _ = start(tessera, session)
    page.goto(url)
    assert "code=" in wait_for_callback(page, tessera)

    # The account page lists the app; removing its access signs it out and
    # its next request asks again.
    page.goto(f"{tessera.url}/account")
    expect(page.get_by_role("heading", name="Apps you've allowed")).to_be_visible()
    page.screenshot(path=screenshots / "account-allowed-apps.png", full_page=True)
    expect(page.get_by_text("webapp", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Remove access for Acme Web").click()
    expect(page.get_by_text("When an app asks for access")).to_be_visible()
    refused = requests.post(
        f"{tessera.url}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed["refresh_token"],
            "client_id": "webapp",
            "client_secret": WEB_SECRET,
        },
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    url, _, _ = start(tessera, session)
    page.goto(url)
    expect(page.get_by_role("button", name="Allow")).to_be_visible()
    context.close()


def test_a_failed_sign_in_says_so_in_an_alert(tessera, browser):
    tessera.register("bob-alert")
    page = browser.new_page()
    url, _, _ = start(tessera, authlib_session(tessera))
    page.goto(url)
    sign_in(page, "bob-alert", "not the password")
    expect(page.get_by_role("alert")).to_have_text(
        "Incorrect username, email or password."
    )
    expect(page.get_by_label("Username or email")).to_have_value("bob-alert")
    page.close()


def test_create_account_then_deny_returns_access_denied(tessera, browser):
    page = browser.new_page()
    url, state, _ = start(tessera, authlib_session(tessera))
    page.goto(url)
    page.get_by_role("link", name="Create account").click()
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Email").fill("carol@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("button", name="Deny").click()
    callback = wait_for_callback(page, tessera)
    assert "error=access_denied" in callback
    assert f"state={state}" in callback
    page.close()


def test_first_party_native_clients_skip_consent(tessera, browser):
    tessera.register("dave")
    page = browser.new_page()
    # Registered as http://127.0.0.1/callback: any port is accepted.
    loopback = tessera.callback
    session = OAuth2Session(
        client_id="native",
        redirect_uri=loopback,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = secrets.token_urlsafe(48)
    url, _ = session.create_authorization_url(
        f"{tessera.url}/authorize", code_verifier=verifier, login_hint="dave"
    )
    page.goto(url)
    expect(page.get_by_label("Username or email")).to_have_value("dave")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    callback = wait_for_callback(page, tessera)
    token = session.fetch_token(
        f"{tessera.url}/token", authorization_response=callback, code_verifier=verifier
    )
    assert "access_token" in token
    page.close()


def test_a_form_posted_without_its_csrf_token_is_refused(tessera, browser):
    context = browser.new_context()
    page = context.new_page()
    url, _, _ = start(tessera, authlib_session(tessera))
    page.goto(url)
    request_id = page.locator("input[name=request]").get_attribute("value")
    reply = context.request.post(
        f"{tessera.url}/sign-in",
        form={"request": request_id, "username": "alice", "password": PASSWORD},
        max_redirects=0,
    )
    assert reply.status == 403
    context.close()


def test_pages_fit_a_phone_and_follow_the_dark_mode_setting(tessera, browser, screenshots):
    url, _, _ = start(tessera, authlib_session(tessera))
    backgrounds = {}
    for scheme in ["light", "dark"]:
        context = browser.new_context(
            viewport={"width": 360, "height": 740},
            color_scheme=scheme,
            device_scale_factor=2,
        )
        page = context.new_page()
        page.goto(url)
        overflow = page.evaluate(
            "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
        )
        assert overflow == 0, f"{scheme}: {overflow}px of horizontal scrolling"
        button = page.get_by_role("button", name="Sign in").bounding_box()
        assert button["width"] > 250, button
        backgrounds[scheme] = page.evaluate(
            "getComputedStyle(document.body).backgroundColor"
        )
        page.screenshot(path=str(screenshots / f"sign-in-{scheme}.png"), full_page=True)
        context.close()
    assert backgrounds["light"] != backgrounds["dark"], backgrounds
