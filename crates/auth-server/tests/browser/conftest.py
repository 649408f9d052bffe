"""The real `tessera` binary and Debian's Chromium, for the browser tests.

Run through `cargo xtask browser` (part of `cargo xtask ci`), which builds
the binary, prepares the Python packages and names both here:
TESSERA_TEST_BIN (the binary), CHROMIUM (default /usr/bin/chromium).
"""

import os
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright

PASSWORD = "correct horse battery"
WEB_SECRET = "browser-test-secret-" + secrets.token_urlsafe(24)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CallbackServer:
    """The clients' redirect URI: answers every request and records its URL."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                # Browsers also ask for /favicon.ico: not a redirect.
                if self.path.startswith("/callback"):
                    seen.append(f"http://127.0.0.1:{self.server.server_port}{self.path}")
                body = b"<!doctype html><title>callback</title><p>back at the app</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


class Tessera:
    """A running `tessera serve` on SQLite with two configured clients;
    `settings` adds environment settings (e.g. the ID-token algorithm)."""

    def __init__(
        self,
        workdir: Path,
        settings: dict | None = None,
        host: str = "127.0.0.1",
        public_url: str | None = None,
    ):
        self.port = free_port()
        # Passkeys need a domain name: `localhost` serves them, an IP does not.
        self.url = f"http://{host}:{self.port}"
        self.public_url = public_url or self.url
        self.callbacks = CallbackServer()
        self.callback_port = self.callbacks.port
        self.callback = f"http://127.0.0.1:{self.callback_port}/callback"
        self.signed_out = f"http://127.0.0.1:{self.callback_port}/signed-out"
        config = workdir / "tessera.toml"
        config.write_text(
            f"""
[[clients]]
id = "webapp"
name = "Acme Web"
secret = "{WEB_SECRET}"
redirect_uris = ["{self.callback}"]
post_logout_redirect_uris = ["{self.signed_out}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email", "offline_access"]

[[clients]]
id = "native"
name = "Acme CLI"
redirect_uris = ["http://127.0.0.1/callback"]
first_party = true
"""
        )
        env = dict(os.environ)
        env.update(
            {
                "TESSERA_CONFIG": str(config),
                "TESSERA_SERVER__ADDR": f"127.0.0.1:{self.port}",
                "TESSERA_SERVER__PUBLIC_URL": self.public_url,
                "TESSERA_FACTORS__ENCRYPTION_KEY": "browser-test-factor-key-" + "k" * 16,
                "TESSERA_STORAGE__URL": f"sqlite://{workdir / 'tessera.db'}",
                "TESSERA_DATA_DIR": str(workdir),
                "TESSERA_PASSWORDS__MEMORY_KIB": "1024",
                "TESSERA_PASSWORDS__ITERATIONS": "1",
                "TESSERA_RATE_LIMIT__PER_MINUTE": "0",
                "TESSERA_LOG__FORMAT": "json",
                **(settings or {}),
            }
        )
        self.log = open(workdir / "tessera.log", "w")
        self.process = subprocess.Popen(
            [os.environ["TESSERA_TEST_BIN"], "serve"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    "tessera did not start: " + (workdir / "tessera.log").read_text()
                )
            time.sleep(0.1)

    def register(self, username: str) -> None:
        reply = requests.post(
            f"{self.url}/users",
            json={
                "username": username,
                "email": f"{username}@example.org",
                "password": PASSWORD,
            },
            timeout=10,
        )
        assert reply.status_code == 201, reply.text

    def stop(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"tessera exited early ({self.process.returncode}): "
                + Path(self.log.name).read_text()[-3000:]
            )
        if os.environ.get("TESSERA_TEST_KEEP_LOG"):
            Path(os.environ["TESSERA_TEST_KEEP_LOG"]).write_text(Path(self.log.name).read_text())
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()
        self.callbacks.stop()


@pytest.fixture(scope="session")
def tessera():
    with tempfile.TemporaryDirectory() as workdir:
        server = Tessera(Path(workdir))
        yield server
        server.stop()


@pytest.fixture(scope="module", params=["RS256", "ES256", "EdDSA"])
def oidc_tessera(request):
    """A server per ID-token signing algorithm (its dev key generated on start)."""
    with tempfile.TemporaryDirectory() as workdir:
        server = Tessera(
            Path(workdir), {"TESSERA_OIDC__ID_TOKEN_ALGORITHM": request.param}
        )
        server.alg = request.param
        yield server
        server.stop()


@pytest.fixture(scope="session")
def browser():
    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots():
    """Where screenshots go (kept when SCREENSHOTS_DIR is set)."""
    target = os.environ.get("SCREENSHOTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        yield Path(target)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
