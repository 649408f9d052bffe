"""Forgot password, in a real browser, with the message delivered to a real
SMTP server (aiosmtpd in this process): the sign-in page's **Forgot
password?** link, the message, its link, a new password, and signing in
with it."""

import email
import email.policy
import re
import tempfile
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect

from conftest import PASSWORD, Tessera, free_port
from test_sign_in import authlib_session, sign_in, start, wait_for_callback


class Inbox:
    """An SMTP server that keeps every message it is given."""

    def __init__(self):
        self.messages = []
        inbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                inbox.messages.append(
                    email.message_from_bytes(envelope.content, policy=email.policy.default)
                )
                return "250 Message accepted"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait_for(self, to: str, subject_part: str, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for message in self.messages:
                if message["To"] == to and subject_part in message["Subject"]:
                    return message
            time.sleep(0.1)
        raise AssertionError(f"no '{subject_part}' message to {to}: {[m['Subject'] for m in self.messages]}")

    def stop(self):
        self.controller.stop()


def link_in(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"https?://\S+token=\S+", text).group(0)


@pytest.fixture(scope="module")
def mail_tessera():
    inbox = Inbox()
    with tempfile.TemporaryDirectory() as workdir:
        server = Tessera(
            Path(workdir),
            {
                "TESSERA_MAIL__TRANSPORT": "smtp",
                "TESSERA_MAIL__FROM": "Acme Accounts <accounts@acme.test>",
                "TESSERA_MAIL__SMTP__HOST": "127.0.0.1",
                "TESSERA_MAIL__SMTP__PORT": str(inbox.port),
                "TESSERA_MAIL__SMTP__SECURITY": "none",
                "TESSERA_MAIL__POLL_INTERVAL": "200ms",
            },
        )
        server.inbox = inbox
        yield server
        server.stop()
    inbox.stop()


def test_forgot_password_then_sign_in_with_the_new_one(mail_tessera, browser, screenshots):
    tessera = mail_tessera
    tessera.register("rosa")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    url, _, _ = start(tessera, authlib_session(tessera))
    page.goto(url)
    page.get_by_role("link", name="Forgot password?").click()

    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    page.get_by_label("Email").fill("rosa@example.org")
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("status")).to_contain_text("on its way")

    message = tessera.inbox.wait_for("rosa@example.org", "Reset")
    assert message["From"] == "Acme Accounts <accounts@acme.test>"
    link = link_in(message)
    assert link.startswith(f"{tessera.url}/password/reset?token="), link
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Choose a new password" in html

    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password").fill("rosa's brand new passphrase")
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_role("status")).to_contain_text("sign in with your new password")
    tessera.inbox.wait_for("rosa@example.org", "password was changed")

    # The link is spent: the page says so and offers the next step.
    page.goto(link)
    expect(page.get_by_role("heading", name="This link was already used")).to_be_visible()
    expect(page.get_by_role("link", name="Ask for a new reset link")).to_be_visible()

    url, _, _ = start(tessera, authlib_session(tessera))
    page.goto(url)
    sign_in(page, "rosa", PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("Incorrect username, email or password.")
    sign_in(page, "rosa", "rosa's brand new passphrase")
    page.get_by_role("button", name="Allow").click()
    assert "code=" in wait_for_callback(page, tessera)
    context.close()


def test_the_mail_pages_fit_a_phone(mail_tessera, browser, screenshots):
    tessera = mail_tessera
    tessera.register("phoebe")
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2)
    page = context.new_page()
    page.goto(f"{tessera.url}/forgot-password")
    page.screenshot(path=str(screenshots / "forgot-password.png"), full_page=True)
    page.get_by_label("Email").fill("phoebe@example.org")
    page.get_by_role("button", name="Send reset link").click()
    link = link_in(tessera.inbox.wait_for("phoebe@example.org", "Reset"))
    page.goto(link)
    for name in ["Set new password"]:
        box = page.get_by_role("button", name=name).bounding_box()
        assert box["width"] > 250, box
    overflow = page.evaluate(
        "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )
    assert overflow == 0, f"{overflow}px of horizontal scrolling"
    page.screenshot(path=str(screenshots / "reset-password.png"), full_page=True)
    verify = link_in(tessera.inbox.wait_for("phoebe@example.org", "Confirm your email"))
    page.goto(verify)
    expect(page.get_by_role("button", name="Confirm email")).to_be_visible()
    page.screenshot(path=str(screenshots / "confirm-email.png"), full_page=True)
    page.get_by_role("button", name="Confirm email").click()
    expect(page.get_by_role("status")).to_contain_text("confirmed")
    context.close()
