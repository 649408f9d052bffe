"""Off-the-shelf OpenID Connect relying parties against the real binary,
with nothing but the issuer URL, a client id and a secret: openid-client
(npm, v6) and Authlib, once per ID-token signing algorithm, with a person
signing in through the hosted pages in headless Chromium."""

import json
import os
import secrets
import subprocess

import requests
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from playwright.sync_api import expect

from conftest import WEB_SECRET
from test_sign_in import authlib_session, sign_in, wait_for_callback

MAX_AGE = 300


def openid_client(command: str, **args) -> dict:
    """One step of `rp.mjs` (openid-client), its JSON answer."""
    done = subprocess.run(
        [os.environ.get("NODE", "node"), os.environ["TESSERA_TEST_RP"], command, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"openid-client {command} failed: {done.stderr}"
    return json.loads(done.stdout)


def client_args(tessera) -> dict:
    return {
        "issuer": tessera.url,
        "client_id": "webapp",
        "client_secret": WEB_SECRET,
        "alg": tessera.alg,
        "redirect_uri": tessera.callback,
        "post_logout_redirect_uri": tessera.signed_out,
        "max_age": MAX_AGE,
    }


def sign_in_and_allow(page, tessera, url, login):
    page.goto(url)
    sign_in(page, login)
    page.get_by_role("button", name="Allow").click()
    return wait_for_callback(page, tessera)


def test_openid_client_discovers_signs_in_refreshes_and_logs_out(oidc_tessera, browser):
    tessera = oidc_tessera
    tessera.register("oscar")
    page = browser.new_context().new_page()
    started = openid_client("start", **client_args(tessera))
    callback = sign_in_and_allow(page, tessera, started["url"], "oscar")

    rp = openid_client("finish", callback_url=callback, **started, **client_args(tessera))
    assert rp["id_token_header"]["alg"] == tessera.alg
    claims = rp["claims"]
    assert claims["iss"] == tessera.url
    assert claims["aud"] == "webapp"
    assert claims["nonce"] == started["nonce"]
    assert claims["amr"] == ["pwd"]
    assert claims["email"] == "oscar@example.org" and claims["email_verified"] is False
    assert claims["preferred_username"] == "oscar"
    assert rp["userinfo"]["sub"] == claims["sub"]
    assert rp["refreshed_claims"]["sub"] == claims["sub"], "a refresh keeps the person"
    assert "nonce" not in rp["refreshed_claims"]

    # RP-initiated logout: the end-session URL openid-client built ends the
    # browser's sign-in and every session it started, then comes back.
    page.goto(rp["end_session_url"])
    page.wait_for_url(tessera.signed_out + "?state=rp-logout-state")
    for token in (rp["access_token"], rp["refreshed_access_token"]):
        me = requests.get(
            f"{tessera.url}/users/me",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert me.status_code == 401
    # Signed out: the next sign-in asks for the password again.
    page.goto(openid_client("start", **client_args(tessera))["url"])
    expect(page.get_by_label("Password")).to_be_visible()


def test_authlib_validates_the_id_token_as_a_code_flow_id_token(oidc_tessera, browser):
    tessera = oidc_tessera
    tessera.register("ava")
    metadata = requests.get(f"{tessera.url}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["issuer"] == tessera.url
    session = authlib_session(tessera, scope="openid email")
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, _ = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    page = browser.new_context(java_script_enabled=False).new_page()
    callback = sign_in_and_allow(page, tessera, url, "ava")
    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    keys = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": tessera.url}},
        claims_params={"nonce": nonce, "client_id": "webapp", "access_token": token["access_token"]},
    )
    claims.validate(leeway=5)
    assert claims.header["alg"] == tessera.alg
    assert claims["email"] == "ava@example.org"
    userinfo = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    ).json()
    assert userinfo["sub"] == claims["sub"]


def test_sign_out_without_a_hint_is_confirmed_on_a_page(tessera, browser, screenshots):
    tessera.register("cora")
    page = browser.new_context(java_script_enabled=False).new_page()
    session = authlib_session(tessera, scope="openid")
    verifier = secrets.token_urlsafe(48)
    url, _ = session.create_authorization_url(f"{tessera.url}/authorize", code_verifier=verifier)
    sign_in_and_allow(page, tessera, url, "cora")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{tessera.url}/logout?client_id=webapp&post_logout_redirect_uri={tessera.signed_out}&state=s")
    expect(page.get_by_role("heading", name="Sign out of Tessera?")).to_be_visible()
    expect(page.get_by_text("Acme Web asks to sign you out")).to_be_visible()
    page.screenshot(path=str(screenshots / "sign-out-phone.png"), full_page=True)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(tessera.signed_out + "?state=s")

    page.goto(f"{tessera.url}/logout")
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("You have signed out of Tessera")
    page.screenshot(path=str(screenshots / "signed-out-phone.png"), full_page=True)
