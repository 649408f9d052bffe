//! The authorization-code flow against the real binary: clients from the
//! CLI, each step of the browser flow on a different replica, and the bound
//! on pending requests under a flood.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::support::*;

pub const CALLBACK: &str = "https://web.example/callback";
const SIGNED_OUT: &str = "https://web.example/signed-out";
const VERIFIER: &str = "e2e-verifier-e2e-verifier-e2e-verifier-e2e-verifier";

/// A browser for the e2e tests: keeps cookies (by name: every replica is
/// 127.0.0.1, which is one cookie host), never follows redirects.
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub text: String,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let reply = req
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .unwrap();
        for set in reply.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        Page {
            status: reply.status(),
            location: reply
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            text: reply.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, server: &Server, path: &str) -> Page {
        let req = self.http.get(server.url(path));
        self.send(req).await
    }

    /// Submits the form of `path` (fetched from `page_server`) to `post_server`.
    pub async fn submit(
        &mut self,
        page_server: &Server,
        post_server: &Server,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        self.submit_keeping(page_server, post_server, path, "request", fields)
            .await
    }

    /// [`submit`](Self::submit) for a form whose hidden field `carried`
    /// (`request`, `token`) goes back with the CSRF token.
    pub async fn submit_keeping(
        &mut self,
        page_server: &Server,
        post_server: &Server,
        path: &str,
        carried: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        self.submit_carrying(page_server, post_server, path, &[carried], fields)
            .await
    }

    /// Submits the form of `path` with its CSRF token, the hidden fields
    /// `carried` and `fields`.
    pub async fn submit_carrying(
        &mut self,
        page_server: &Server,
        post_server: &Server,
        path: &str,
        carried: &[&str],
        fields: &[(&str, &str)],
    ) -> Page {
        let page = self.get(page_server, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        let action = path.split('?').next().unwrap();
        self.post_page_form(&page, post_server, action, carried, fields)
            .await
    }

    /// Posts the form of a page already shown to `action` on `server`.
    pub async fn post_page_form(
        &mut self,
        page: &Page,
        server: &Server,
        action: &str,
        carried: &[&str],
        fields: &[(&str, &str)],
    ) -> Page {
        let csrf = hidden(&page.text, "csrf_token");
        let kept: Vec<(&str, String)> = carried
            .iter()
            .map(|name| (*name, hidden(&page.text, name)))
            .collect();
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &csrf)];
        form.extend(kept.iter().map(|(name, value)| (*name, value.as_str())));
        form.extend_from_slice(fields);
        let req = self.http.post(server.url(action)).form(&form);
        self.send(req).await
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The claims of a JWT, unverified (the in-process tests verify signatures).
fn id_token_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub fn query_of(url: &str) -> BTreeMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

pub fn authorize_path(client_id: &str, scope: &str) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CALLBACK),
            ("scope", scope),
            ("state", "e2e-state"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    format!("/authorize?{query}")
}

/// Adds a confidential client with the CLI; returns its secret.
pub fn add_client(env: &[(&str, String)], id: &str) -> String {
    let out = run_ok(
        env,
        &[
            "client",
            "add",
            id,
            "--name",
            "E2E Web",
            "--redirect-uri",
            CALLBACK,
            "--post-logout-redirect-uri",
            SIGNED_OUT,
            "--scope",
            "openid",
            "--scope",
            "offline_access",
        ],
    );
    out.lines()
        .find_map(|l| l.strip_prefix("client_secret\t"))
        .unwrap_or_else(|| panic!("no secret printed: {out}"))
        .to_owned()
}

/// Each step of the flow on a different replica; they share only the store.
pub async fn code_flow_across_replicas(env: &[(&str, String)]) {
    let secret = add_client(env, "e2e-web");
    let [a, b, c] = [Server::start(env), Server::start(env), Server::start(env)];
    assert_eq!(a.register("roamer").await, StatusCode::CREATED);
    let mut browser = Browser::new();

    let start = browser
        .get(&a, &authorize_path("e2e-web", "openid offline_access"))
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text);
    let sign_in = start.location.unwrap();
    let signed_in = browser
        .submit(
            &b,
            &c,
            &sign_in,
            &[("username", "roamer"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    let consent = signed_in.location.unwrap();
    assert!(consent.starts_with("/consent?"), "{consent}");
    let allowed = browser
        .submit(&a, &b, &consent, &[("decision", "allow")])
        .await;
    let back = allowed.location.unwrap();
    assert!(back.starts_with(CALLBACK), "{back}");
    let params = query_of(&back);
    assert_eq!(params["state"], "e2e-state");

    let tokens = c
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
                ("client_id", "e2e-web"),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(a.me(access).await, StatusCode::OK);
    let refreshed = b
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", "e2e-web"),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);

    // A second authorization on yet another replica needs no page at all.
    let again = browser.get(&c, &authorize_path("e2e-web", "openid")).await;
    assert_eq!(again.status, StatusCode::FOUND, "{}", again.text);
    assert!(query_of(&again.location.unwrap()).contains_key("code"));

    // OpenID Connect across replicas: the ID token from one verifies as a
    // hint on another, userinfo answers anywhere, and signing out on one
    // ends the sessions everywhere.
    let refreshed: Value = refreshed.json().await.unwrap();
    let id_token = refreshed["id_token"].as_str().expect("an ID token");
    let access = refreshed["access_token"].as_str().unwrap();
    let info = a
        .http
        .get(a.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::OK);
    let info: Value = info.json().await.unwrap();
    let claims = id_token_claims(id_token);
    assert_eq!(info["sub"], claims["sub"]);
    assert!(claims["sid"].is_string(), "{claims}");
    let logout_path = format!(
        "/logout?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", SIGNED_OUT),
                ("state", "gone"),
            ])
            .finish()
    );
    let out = browser.get(&b, &logout_path).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.text);
    assert_eq!(
        out.location.as_deref(),
        Some(&*format!("{SIGNED_OUT}?state=gone"))
    );
    assert_eq!(
        c.me(access).await,
        StatusCode::UNAUTHORIZED,
        "ended everywhere"
    );
    let silent = browser
        .get(
            &a,
            &format!("{}&prompt=none", authorize_path("e2e-web", "openid")),
        )
        .await;
    assert_eq!(
        query_of(&silent.location.unwrap())["error"],
        "login_required"
    );
    for server in [a, b, c] {
        server.stop();
    }
}

/// The client commands on a store a running server also uses.
pub async fn client_cli_manages_clients(env: &[(&str, String)]) {
    let secret = add_client(env, "cli-app");
    let public = run_ok(
        env,
        &[
            "client",
            "add",
            "native",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1/cb",
        ],
    );
    assert!(!public.contains("client_secret"), "{public}");
    let listed = run_ok(env, &["client", "list"]);
    assert!(
        listed.contains("cli-app\tconfidential\tstore\tE2E Web\t"),
        "{listed}"
    );
    assert!(listed.contains("native\tpublic\tstore\t"), "{listed}");
    let shown = run_ok(env, &["client", "show", "cli-app"]);
    assert!(
        shown.contains(&format!("redirect_uris\t{CALLBACK}")),
        "{shown}"
    );
    assert!(!shown.contains(&secret), "the secret is never shown again");

    let duplicate = tessera(env)
        .args(["client", "add", "cli-app", "--redirect-uri", CALLBACK])
        .output()
        .unwrap();
    assert!(!duplicate.status.success());
    let bad_uri = tessera(env)
        .args([
            "client",
            "add",
            "bad",
            "--redirect-uri",
            "http://evil.example/cb",
        ])
        .output()
        .unwrap();
    assert!(!bad_uri.status.success());
    assert!(String::from_utf8_lossy(&bad_uri.stderr).contains("https"));

    let server = Server::start(env);
    let introspect = |secret: String| {
        let server = &server;
        async move {
            server
                .post_form(
                    "/introspect",
                    &[
                        ("token", "anything"),
                        ("client_id", "cli-app"),
                        ("client_secret", &secret),
                    ],
                )
                .await
                .status()
        }
    };
    assert_eq!(introspect(secret.clone()).await, StatusCode::OK);
    let rotated = run_ok(env, &["client", "rotate-secret", "cli-app"]);
    let new_secret = rotated
        .lines()
        .find_map(|l| l.strip_prefix("client_secret\t"))
        .unwrap()
        .to_owned();
    assert_eq!(
        introspect(secret).await,
        StatusCode::UNAUTHORIZED,
        "old secret"
    );
    assert_eq!(introspect(new_secret).await, StatusCode::OK, "new secret");

    let updated = run_ok(
        env,
        &[
            "client",
            "update",
            "cli-app",
            "--name",
            "Renamed",
            "--first-party",
        ],
    );
    assert!(updated.contains("name\tRenamed") && updated.contains("first_party\ttrue"));
    assert!(
        updated.contains(&format!("redirect_uris\t{CALLBACK}")),
        "kept: {updated}"
    );
    run_ok(env, &["client", "delete", "cli-app"]);
    let gone = tessera(env)
        .args(["client", "show", "cli-app"])
        .output()
        .unwrap();
    assert!(!gone.status.success());
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_across_replicas_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    code_flow_across_replicas(&sqlite_env(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    client_cli_manages_clients(&sqlite_env(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_clients_are_listed_but_not_edited_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "[[clients]]\nid = \"from-file\"\nname = \"From File\"\nredirect_uris = [\"{CALLBACK}\"]\n"
        ),
    )
    .unwrap();
    let mut env = sqlite_env(dir.path());
    env.push(("TESSERA_CONFIG", config.display().to_string()));
    let listed = run_ok(&env, &["client", "list"]);
    assert!(
        listed.contains("from-file\tpublic\tconfiguration\tFrom File"),
        "{listed}"
    );
    let refused = tessera(&env)
        .args(["client", "delete", "from-file"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("configuration file"));
}

/// `/authorize` stores a pending request for every page it must show, so
/// it is rate limited per address: a flood from one address leaves at most
/// the burst in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorize_flood_cannot_grow_the_store_past_the_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let env = sqlite_env(dir.path());
    add_client(&env, "flooded");
    let mut limited = env.clone();
    limited.push(("TESSERA_RATE_LIMIT__PER_MINUTE", "60".into()));
    limited.push(("TESSERA_RATE_LIMIT__BURST", "10".into()));
    let server = Server::start(&limited);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let path = authorize_path("flooded", "openid");
    let mut refused = 0;
    for _ in 0..200 {
        let reply = http.get(server.url(&path)).send().await.unwrap();
        match reply.status() {
            StatusCode::SEE_OTHER => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(reply.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 180, "the limit answered 429: {refused}");
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("tessera.db").display()
    ))
    .await
    .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM authorization_requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    // The burst, plus what the rate refills while the loop runs (1/s).
    assert!(
        (10..=15).contains(&stored),
        "{stored} pending requests stored"
    );
    server.stop();
}
