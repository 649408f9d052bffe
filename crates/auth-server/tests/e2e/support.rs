//! The `tessera` binary under test: started through `tessera-process` (the
//! same helper the bench uses), with one method per endpoint the tests call.

pub use std::process::{Command, Stdio};
pub use std::time::Duration;

pub use reqwest::StatusCode;
pub use serde_json::{json, Value};
use tessera_process::TesseraProcess;

pub const PASSWORD: &str = "correct horse battery";

/// A running `tessera serve`.
pub struct Server {
    pub process: TesseraProcess,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
}

/// `tessera` with test settings under `env`: cheap Argon2, a short connect
/// timeout, no per-address limit (every test client is 127.0.0.1; the limit
/// has its own test).
pub fn tessera(env: &[(&str, String)]) -> Command {
    let mut command = tessera_process::command(std::path::Path::new(env!("CARGO_BIN_EXE_tessera")));
    command
        .env("TESSERA_PASSWORDS__MEMORY_KIB", "1024")
        .env("TESSERA_PASSWORDS__ITERATIONS", "1")
        .env("TESSERA_STORAGE__CONNECT_TIMEOUT", "5s")
        .env("TESSERA_RATE_LIMIT__PER_MINUTE", "0")
        // Every replica of every test signs ID tokens with the same keys,
        // made once (an RSA key per server start would be slow).
        .env("TESSERA_OIDC__KEYS_DIR", id_token_keys())
        // Replicas share the key that seals authenticator-app secrets.
        .env(
            "TESSERA_FACTORS__ENCRYPTION_KEY",
            "e2e-factor-key-e2e-factor-key-e2e-factor",
        );
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// A folder with an RS256, an ES256 and an EdDSA key (kids `rs256-e2e`,
/// `es256-e2e`, `eddsa-e2e`), made once per test process.
pub fn id_token_keys() -> &'static std::path::Path {
    static KEYS: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for (alg, kid) in [
            (auth_core::SigningAlgorithm::RS256, "rs256-e2e"),
            (auth_core::SigningAlgorithm::ES256, "es256-e2e"),
            (auth_core::SigningAlgorithm::EdDSA, "eddsa-e2e"),
        ] {
            auth_server::keys::write_new_key(dir.path(), alg, Some(kid)).unwrap();
        }
        dir
    })
    .path()
}

impl Server {
    pub fn start(env: &[(&str, String)]) -> Self {
        let process = TesseraProcess::start(tessera(env), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            addr: process.addr(),
            process,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GETs `path` and parses the JSON answer.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every line the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.process.logs().join("\n")
    }

    /// POSTs a form (the OAuth endpoints) and returns the answer.
    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .form(pairs)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, username: &str) -> StatusCode {
        self.http
            .post(self.url("/users"))
            .json(&json!({"username": username, "email": format!("{username}@example.org"), "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn login(&self, username: &str) -> reqwest::Response {
        self.post_form(
            "/token",
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", PASSWORD),
            ],
        )
        .await
    }

    pub async fn token(&self, username: &str) -> String {
        let reply = self.login(username).await;
        assert_eq!(reply.status(), StatusCode::OK);
        let body: Value = reply.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn me(&self, token: &str) -> StatusCode {
        self.http
            .get(self.url("/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `GET /users/me` as JSON (the public user).
    pub async fn me_json(&self, token: &str) -> Value {
        self.http
            .get(self.url("/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn terminate(&self) {
        self.process.terminate().unwrap();
    }

    /// SIGTERM, then wait: graceful shutdown must end with exit status 0.
    pub fn stop(self) {
        match self.process.stop(Duration::from_secs(10)).unwrap() {
            Some(exit) => assert!(exit.success(), "tessera exited with {exit}"),
            None => panic!("tessera did not stop within 10 s of SIGTERM"),
        }
    }
}

pub fn sqlite_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA_STORAGE__BACKEND", "sqlite".into()),
        (
            "TESSERA_STORAGE__URL",
            format!("sqlite://{}", dir.join("tessera.db").display()),
        ),
        ("TESSERA_DATA_DIR", dir.display().to_string()),
    ]
}

pub fn run_ok(env: &[(&str, String)], args: &[&str]) -> String {
    let output = tessera(env).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `tessera ARGS` with `stdin` as standard input.
pub fn run_with_stdin(env: &[(&str, String)], args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = tessera(env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub async fn login_with(server: &Server, username: &str, password: &str) -> Option<String> {
    let reply = server
        .post_form(
            "/token",
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        )
        .await;
    if reply.status() != StatusCode::OK {
        return None;
    }
    let body: Value = reply.json().await.unwrap();
    body["access_token"].as_str().map(str::to_owned)
}

/// A counter's value in the server's `/metrics` (0 when absent).
pub async fn metric(server: &Server, series: &str) -> f64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}
