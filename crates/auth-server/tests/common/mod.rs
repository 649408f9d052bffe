//! Shared helpers for the in-process HTTP tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod smtp;

use std::sync::Arc;

use auth_server::config::Config;
use auth_server::instrumented::Instrumented;
use auth_server::state::build_state;
use auth_server::AppState;
use poem::http::{HeaderMap, Method, StatusCode};
use poem::{Endpoint, EndpointExt, Request};
use serde_json::Value;
use store_memory::MemoryStore;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";
pub const PASSWORD: &str = "correct horse battery";

/// A config for fast tests: cheap Argon2, a fixed secret.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.tokens.secret = Some(auth_core::Secret::new(SECRET));
    config.passwords.memory_kib = 1024;
    config.passwords.iterations = 1;
    config.passwords.max_queue = 10_000;
    // In-process requests have no peer address: all would share one bucket.
    config.rate_limit.per_minute = 0;
    config.oidc.keys_dir = Some(id_token_keys().to_owned());
    config.factors.encryption_key = Some(auth_core::Secret::new(FACTOR_KEY));
    config
}

pub const FACTOR_KEY: &str = "test-factor-key-test-factor-key-test!";

/// One folder of ID-token keys per test process — an RS256, an ES256 and
/// an EdDSA key (kids `rs256-test`, `es256-test`, `eddsa-test`) — so tests
/// neither write into the source tree nor generate RSA keys each time.
pub fn id_token_keys() -> &'static std::path::Path {
    static KEYS: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for (alg, kid) in [
            (auth_core::SigningAlgorithm::RS256, "rs256-test"),
            (auth_core::SigningAlgorithm::ES256, "es256-test"),
            (auth_core::SigningAlgorithm::EdDSA, "eddsa-test"),
        ] {
            auth_server::keys::write_new_key(dir.path(), alg, Some(kid)).unwrap();
        }
        dir
    })
    .path()
}

pub struct TestApp {
    pub state: Arc<AppState<Instrumented<MemoryStore>>>,
    pub endpoint: poem::endpoint::BoxEndpoint<'static, poem::Response>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_config(test_config())
    }

    pub fn with_config(config: Config) -> Self {
        Self::with_store(MemoryStore::new(), config)
    }

    /// An app over `store` (clones share data: two apps, one store).
    pub fn with_store(store: MemoryStore, config: Config) -> Self {
        let state = build_state(store, &config).unwrap();
        let endpoint = auth_server::app(Arc::clone(&state))
            .map_to_response()
            .boxed();
        Self { state, endpoint }
    }

    pub async fn send(&self, req: Request) -> Reply {
        let resp = self.endpoint.get_response(req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().into_vec().await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        let mut req = Request::builder().method(Method::GET).uri_str(path);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        self.send(req.finish()).await
    }

    pub async fn get_with_authorization(&self, path: &str, authorization: &str) -> Reply {
        self.send(
            Request::builder()
                .method(Method::GET)
                .uri_str(path)
                .header("authorization", authorization)
                .finish(),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &str) -> Reply {
        self.send(
            Request::builder()
                .method(Method::POST)
                .uri_str(path)
                .content_type("application/json")
                .body(body.to_owned()),
        )
        .await
    }

    pub async fn post_form(&self, path: &str, body: &str) -> Reply {
        self.send(
            Request::builder()
                .method(Method::POST)
                .uri_str(path)
                .content_type("application/x-www-form-urlencoded")
                .body(body.to_owned()),
        )
        .await
    }

    pub async fn register(&self, username: &str, email: &str) -> Reply {
        let body = serde_json::json!({"username": username, "email": email, "password": PASSWORD});
        self.post_json("/users", &body.to_string()).await
    }

    /// Registers and logs in; returns the access token.
    pub async fn user_with_token(&self, username: &str) -> String {
        let reg = self
            .register(username, &format!("{username}@example.org"))
            .await;
        assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.text);
        self.login(username, PASSWORD).await
    }

    pub async fn login(&self, login: &str, password: &str) -> String {
        let reply = self
            .post_form("/token", &password_form(login, password))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }
}

/// An RFC 9457 problem answer with `status`.
pub fn assert_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{}",
        reply.text
    );
    for key in ["type", "title", "status", "detail"] {
        assert!(
            reply.body.get(key).is_some(),
            "problem lacks {key}: {}",
            reply.text
        );
    }
    assert_eq!(reply.body["status"], status.as_u16());
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn password_form(login: &str, password: &str) -> String {
    format!(
        "grant_type=password&username={}&password={}",
        encode(login),
        encode(password)
    )
}
