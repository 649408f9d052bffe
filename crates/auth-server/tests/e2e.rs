//! End-to-end: the real `tessera` binary, configured only through
//! environment variables, on each backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

/// A running `tessera serve`.
struct Server {
    child: Child,
    addr: SocketAddr,
    http: reqwest::Client,
    /// Every line the process wrote to stdout and stderr.
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn tessera(env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .env("TESSERA_SERVER__ADDR", "127.0.0.1:0")
        .env("TESSERA_LOG__FORMAT", "json")
        .env("TESSERA_PASSWORDS__MEMORY_KIB", "1024")
        .env("TESSERA_PASSWORDS__ITERATIONS", "1")
        .env("TESSERA_STORAGE__CONNECT_TIMEOUT", "5s")
        // Every test client is 127.0.0.1; the limit has its own test.
        .env("TESSERA_RATE_LIMIT__PER_MINUTE", "0")
        .env_remove("RUST_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

impl Server {
    fn start(env: &[(&str, String)]) -> Self {
        let mut child = tessera(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let err_logs = std::sync::Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("tessera: {line}");
                err_logs.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        let out_logs = std::sync::Arc::clone(&logs);
        // Keep draining the logs so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out_logs.lock().unwrap().push(line.clone());
                if let Ok(record) = serde_json::from_str::<Value>(&line) {
                    if let Some(addr) = record["fields"]["addr"].as_str() {
                        if record["fields"]["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("listening"))
                        {
                            let _ = tx.send(addr.to_owned());
                        }
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("tessera did not start: {:?}", child.try_wait()))
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            logs,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a form (the OAuth endpoints) and returns the answer.
    async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .form(pairs)
            .send()
            .await
            .unwrap()
    }

    async fn register(&self, username: &str) -> StatusCode {
        self.http
            .post(self.url("/users"))
            .json(&json!({"username": username, "email": format!("{username}@example.org"), "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn login(&self, username: &str) -> reqwest::Response {
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

    async fn token(&self, username: &str) -> String {
        let reply = self.login(username).await;
        assert_eq!(reply.status(), StatusCode::OK);
        let body: Value = reply.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn me(&self, token: &str) -> StatusCode {
        self.http
            .get(self.url("/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then wait: graceful shutdown must end with exit status 0.
    fn stop(mut self) {
        self.terminate();
        for _ in 0..100 {
            if let Some(exit) = self.child.try_wait().unwrap() {
                assert!(exit.success(), "tessera exited with {exit}");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("tessera did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Register, log in, restart, log in again; the old access token still works.
async fn survives_restart(env: &[(&str, String)]) {
    let first = Server::start(env);
    assert_eq!(first.register("Persistent").await, StatusCode::CREATED);
    let token = first.token("persistent").await;
    assert_eq!(first.me(&token).await, StatusCode::OK);
    first.stop();

    let second = Server::start(env);
    assert_eq!(
        second.me(&token).await,
        StatusCode::OK,
        "old token accepted"
    );
    let fresh = second.token("PERSISTENT@example.org").await;
    assert_eq!(second.me(&fresh).await, StatusCode::OK);
    assert_eq!(second.register("persistent").await, StatusCode::CONFLICT);
    second.stop();
}

async fn one_winner_of_fifty(server: &Server) {
    let replies = futures::future::join_all((0..50).map(|i| async move {
        server
            .http
            .post(server.url("/users"))
            .json(&json!({"username": if i % 2 == 0 { "racer" } else { "Racer" }, "email": format!("racer{i}@x.org"), "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status()
    }))
    .await;
    let created = replies
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = replies
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 49), "{replies:?}");
}

fn sqlite_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA_STORAGE__BACKEND", "sqlite".into()),
        (
            "TESSERA_STORAGE__URL",
            format!("sqlite://{}", dir.join("tessera.db").display()),
        ),
        ("TESSERA_DATA_DIR", dir.display().to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_keeps_users_and_tokens_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // No secret configured: dev generates one into the data folder and keeps it.
    survives_restart(&sqlite_env(dir.path())).await;
    assert!(dir.path().join("hs256.secret").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_has_one_winner_of_fifty_concurrent_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&sqlite_env(dir.path()));
    one_winner_of_fifty(&server).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_is_chosen_by_config_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        ("TESSERA_STORAGE__BACKEND", "memory".into()),
        ("TESSERA_DATA_DIR", dir.path().display().to_string()),
        (
            "TESSERA_TOKENS__SECRET",
            "an-explicit-secret-of-at-least-32-bytes".into(),
        ),
    ]);
    assert_eq!(server.register("ephemeral").await, StatusCode::CREATED);
    let token = server.token("ephemeral").await;
    assert_eq!(server.me(&token).await, StatusCode::OK);
    assert!(
        !dir.path().join("hs256.secret").exists(),
        "a configured secret is used as is"
    );
    // The container health check.
    let healthy = format!("http://{}/healthz", server.addr);
    assert!(tessera(&[])
        .args(["probe", "--url", &healthy])
        .status()
        .unwrap()
        .success());
    let missing = format!("http://{}/nope", server.addr);
    assert!(!tessera(&[])
        .args(["probe", "--url", &missing])
        .status()
        .unwrap()
        .success());
    server.stop();
}

fn run_ok(env: &[(&str, String)], args: &[&str]) -> String {
    let output = tessera(env).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_verify_with_the_published_jwks_and_keys_rotate() {
    use jsonwebtoken::jwk::JwkSet;
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let out = keys_dir.display().to_string();
    run_ok(
        &[],
        &[
            "keys", "generate", "--alg", "EdDSA", "--out", &out, "--kid", "k1",
        ],
    );
    let mut env = sqlite_env(dir.path());
    env.push(("TESSERA_TOKENS__ALGORITHM", "EdDSA".into()));
    env.push(("TESSERA_TOKENS__KEYS_DIR", out.clone()));

    let server = Server::start(&env);
    assert_eq!(server.register("signer").await, StatusCode::CREATED);
    let old_token = server.token("signer").await;
    let jwks: JwkSet = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Verify as a third-party service would: only the JWKS, a JWT library.
    let header = jsonwebtoken::decode_header(&old_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some("k1"));
    let jwk = jwks.find("k1").expect("k1 published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["http://127.0.0.1:8080"]);
    let verified = jsonwebtoken::decode::<Value>(
        &old_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("verifies with the JWKS alone");
    assert_eq!(verified.claims["preferred_username"], "signer");
    server.stop();

    // Rotation: add k2, make it active; k1 stays for verification.
    run_ok(
        &[],
        &[
            "keys", "generate", "--alg", "EdDSA", "--out", &out, "--kid", "k2",
        ],
    );
    env.push(("TESSERA_TOKENS__ACTIVE_KID", "k2".into()));
    let listed = run_ok(&env, &["keys", "list"]);
    assert!(listed.contains("k1\tEdDSA\tverify-only"), "{listed}");
    assert!(listed.contains("k2\tEdDSA\tsigning"), "{listed}");
    let rotated = Server::start(&env);
    assert_eq!(
        rotated.me(&old_token).await,
        StatusCode::OK,
        "old tokens stay valid"
    );
    let new_token = rotated.token("signer").await;
    let kid = jsonwebtoken::decode_header(&new_token).unwrap().kid;
    assert_eq!(kid.as_deref(), Some("k2"));
    let jwks: Value = rotated
        .http
        .get(rotated.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["k2", "k1"]);
    rotated.stop();
}

/// Two processes on one database count one account's failures together.
async fn throttling_is_shared_between_replicas(env: &[(&str, String)]) {
    let mut env = env.to_vec();
    env.push(("TESSERA_THROTTLE__MAX_FAILURES", "4".into()));
    let a = Server::start(&env);
    let b = Server::start(&env);
    assert_eq!(a.register("shared").await, StatusCode::CREATED);
    for server in [&a, &b, &a, &b] {
        assert!(login_with(server, "shared", "wrong guess").await.is_none());
    }
    for server in [&a, &b] {
        let reply = server
            .post_form(
                "/token",
                &[
                    ("grant_type", "password"),
                    ("username", "shared"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(reply.headers().contains_key("retry-after"));
    }
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_shared_between_replicas_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    throttling_is_shared_between_replicas(&sqlite_env(dir.path())).await;
}

/// Runs `tessera ARGS` with `stdin` as standard input.
fn run_with_stdin(env: &[(&str, String)], args: &[&str], stdin: &str) -> std::process::Output {
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

async fn login_with(server: &Server, username: &str, password: &str) -> Option<String> {
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

/// The admin CLI on a store a running server also uses.
async fn admin_cli_manages_accounts(env: &[(&str, String)]) {
    let added = run_with_stdin(
        env,
        &[
            "user",
            "add",
            "--username",
            "Oper",
            "--email",
            "op@example.org",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let weak = run_with_stdin(
        env,
        &[
            "user",
            "add",
            "--username",
            "weak",
            "--email",
            "weak@example.org",
        ],
        "password\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("too common"));

    let server = Server::start(env);
    let a = login_with(&server, "oper", PASSWORD)
        .await
        .expect("added user logs in");
    let listed = run_ok(env, &["user", "list"]);
    assert!(
        listed.contains("\tOper\top@example.org\tactive\t"),
        "{listed}"
    );
    assert!(!listed.contains("weak"));

    run_ok(env, &["user", "disable", "oper"]);
    assert_eq!(
        server.me(&a).await,
        StatusCode::UNAUTHORIZED,
        "live token stops at once"
    );
    assert!(login_with(&server, "oper", PASSWORD).await.is_none());
    assert!(run_ok(env, &["user", "list"]).contains("\tdisabled\t"));

    run_ok(env, &["user", "enable", "OP@example.org"]);
    let b = login_with(&server, "oper", PASSWORD)
        .await
        .expect("enabled again");
    let revoked = run_ok(env, &["sessions", "revoke", "--user", "oper"]);
    assert!(revoked.contains("revoked 1 session"), "{revoked}");
    assert_eq!(server.me(&b).await, StatusCode::UNAUTHORIZED);

    let c = login_with(&server, "oper", PASSWORD)
        .await
        .expect("logs in");
    let new_password = "an operator chose this one";
    let reset = run_with_stdin(
        env,
        &["user", "set-password", "oper"],
        &format!("{new_password}\n"),
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_eq!(server.me(&c).await, StatusCode::UNAUTHORIZED);
    assert!(login_with(&server, "oper", PASSWORD).await.is_none());
    let d = login_with(&server, "oper", new_password)
        .await
        .expect("new password");

    run_ok(env, &["user", "delete", "oper"]);
    assert_eq!(server.me(&d).await, StatusCode::UNAUTHORIZED);
    assert!(login_with(&server, "oper", new_password).await.is_none());
    let again = tessera(env)
        .args(["user", "delete", "oper"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no such user"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    admin_cli_manages_accounts(&sqlite_env(dir.path())).await;
}

#[test]
fn admin_cli_refuses_the_memory_backend_with_a_reason() {
    let output = tessera(&[("TESSERA_STORAGE__BACKEND", "memory".into())])
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("persistent store"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = sqlite_env(dir.path());
    // Real Argon2 cost, so logins are still running when the signal lands.
    env.push(("TESSERA_PASSWORDS__MEMORY_KIB", "19456".into()));
    env.push(("TESSERA_PASSWORDS__ITERATIONS", "16".into()));
    let server = Server::start(&env);
    assert_eq!(server.register("patient").await, StatusCode::CREATED);
    let server = std::sync::Arc::new(server);
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move {
                let status = server.login("patient").await.status();
                (status, std::time::Instant::now())
            })
        })
        .collect();
    // Long enough for all eight to be accepted (even on a busy machine),
    // well short of the time two hashing threads need to serve them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = std::time::Instant::now();
    server.terminate();
    let mut after_signal = 0;
    for login in logins {
        let (status, finished) = login.await.unwrap();
        assert_eq!(status, StatusCode::OK, "in-flight request finished");
        after_signal += usize::from(finished > signalled);
    }
    eprintln!("{after_signal} of 8 logins finished after SIGTERM");
    assert!(
        after_signal > 0,
        "some requests were still in flight at SIGTERM"
    );
    let mut server = std::sync::Arc::into_inner(server).expect("sole owner");
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "clean exit after draining: {exit}");
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_rate_limit_with_trusted_proxies_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = sqlite_env(dir.path());
    env.push(("TESSERA_RATE_LIMIT__PER_MINUTE", "60".into()));
    env.push(("TESSERA_RATE_LIMIT__BURST", "3".into()));
    let server = Server::start(&env);
    let attempt = |forwarded: Option<&'static str>| {
        let mut request = server.http.post(server.url("/token")).form(&[
            ("grant_type", "password"),
            ("username", "nobody"),
            ("password", "irrelevant"),
        ]);
        if let Some(ip) = forwarded {
            request = request.header("x-forwarded-for", ip);
        }
        request.send()
    };
    for _ in 0..3 {
        assert_eq!(
            attempt(None).await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
    }
    let limited = attempt(None).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.headers()["cache-control"], "no-store");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Registration shares the limit and answers in problem details.
    let register = server
        .http
        .post(server.url("/users"))
        .json(&json!({"username": "late", "email": "late@x.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::TOO_MANY_REQUESTS);
    // X-Forwarded-For from an untrusted peer is ignored: still limited.
    assert_eq!(
        attempt(Some("203.0.113.7")).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    server.stop();

    // Behind a trusted proxy (127.0.0.1 here), each forwarded client has its own bucket.
    env.push((
        "TESSERA_RATE_LIMIT__TRUSTED_PROXIES",
        "[\"127.0.0.1\"]".into(),
    ));
    let proxied = Server::start(&env);
    let attempt = |ip: &'static str| {
        proxied
            .http
            .post(proxied.url("/token"))
            .header("x-forwarded-for", ip)
            // Another name than above: account throttling must not interfere.
            .form(&[
                ("grant_type", "password"),
                ("username", ip),
                ("password", "x"),
            ])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("198.51.100.1").await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        attempt("198.51.100.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        attempt("198.51.100.2").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    proxied.stop();
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// 1,000 simultaneous logins at the real Argon2 cost: memory stays bounded
/// by the hashing threads, the excess is shed with 503 + Retry-After, and
/// `/users/me` keeps answering meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_logins_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = sqlite_env(dir.path());
    env.push(("TESSERA_PASSWORDS__MEMORY_KIB", "19456".into()));
    env.push(("TESSERA_PASSWORDS__ITERATIONS", "2".into()));
    env.push(("TESSERA_PASSWORDS__MAX_CONCURRENT", "2".into()));
    env.push(("TESSERA_THROTTLE__MAX_FAILURES", "100000".into()));
    let server = std::sync::Arc::new(Server::start(&env));
    assert_eq!(server.register("crowd").await, StatusCode::CREATED);
    let token = server.token("crowd").await;
    let before = peak_rss_mib(server.child.id());
    let storm: Vec<_> = (0..1000)
        .map(|_| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move {
                let reply = server.login("crowd").await;
                let retry = reply.headers().contains_key("retry-after");
                (reply.status(), retry)
            })
        })
        .collect();
    let mut me_latencies = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        assert_eq!(server.me(&token).await, StatusCode::OK);
        me_latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ok = 0;
    let mut shed = 0;
    for login in storm {
        match login.await.unwrap() {
            (StatusCode::OK, _) => ok += 1,
            (StatusCode::SERVICE_UNAVAILABLE, true) => shed += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let peak = peak_rss_mib(server.child.id());
    me_latencies.sort();
    eprintln!(
        "1000 concurrent logins: {ok} served, {shed} shed; peak RSS {before:.1} MiB before, \
         {peak:.1} MiB during; /users/me during the storm: median {:?}, max {:?}",
        me_latencies[me_latencies.len() / 2],
        me_latencies[me_latencies.len() - 1]
    );
    assert_eq!(ok + shed, 1000);
    assert!(shed > 0, "the bounded queue sheds the excess");
    assert!(ok >= 2, "hashing kept going");
    // 19 MiB per hashing thread, plus a modest base for the process and
    // a thousand open connections (measured: about 100 MiB in all).
    assert!(peak <= 19.0 * 2.0 + 96.0, "peak RSS {peak:.1} MiB");
    assert!(
        me_latencies[me_latencies.len() / 2] < Duration::from_millis(100),
        "/users/me never waits behind hashing"
    );
    std::sync::Arc::into_inner(server)
        .expect("sole owner")
        .stop();
}

/// Secrets must never reach the logs, even at debug level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_logs_of_a_full_session() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "log-test-secret-log-test-secret-0123456789";
    let mut env = sqlite_env(dir.path());
    env.push(("TESSERA_TOKENS__SECRET", secret.into()));
    env.push(("TESSERA_LOG__LEVEL", "debug".into()));
    env.push(("TESSERA_LOG__FORMAT", "json".into()));
    let server = Server::start(&env);
    assert_eq!(server.register("secretive").await, StatusCode::CREATED);
    let login: Value = server.login("secretive").await.json().await.unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(server.me(&access).await, StatusCode::OK);
    let refresh_grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let rotated: Value = server
        .post_form("/token", &refresh_grant)
        .await
        .json()
        .await
        .unwrap();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    // A reuse (logged as a security event) and a wrong password.
    server.post_form("/token", &refresh_grant).await;
    assert!(login_with(&server, "secretive", "wrong-password-attempt")
        .await
        .is_none());
    for path in ["/introspect", "/revoke"] {
        server.post_form(path, &[("token", access2.as_str())]).await;
    }
    let logs = server.logs.lock().unwrap().join("\n");
    server.stop();
    assert!(
        logs.contains("\"request\""),
        "request lines were logged: {logs}"
    );
    for (what, value) in [
        ("password", PASSWORD),
        ("wrong password", "wrong-password-attempt"),
        ("access token", access.as_str()),
        ("rotated access token", access2.as_str()),
        ("refresh token", refresh.as_str()),
        ("rotated refresh token", refresh2.as_str()),
        ("signing secret", secret),
    ] {
        assert!(!logs.contains(value), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn production_profile_refuses_to_start_with_weak_settings() {
    let output = tessera(&[
        ("TESSERA_PROFILE", "production".into()),
        ("TESSERA_STORAGE__BACKEND", "memory".into()),
        ("TESSERA_TOKENS__SECRET", "short".into()),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(stderr.contains("memory"), "{stderr}");
    assert!(
        !stderr.contains("short\""),
        "the secret itself is not echoed"
    );
}

/// The end-to-end cases every networked database backend runs, in the
/// module that expands it: `$backend` is the `storage.backend` value, `$db`
/// a type whose `create().await` gives a fresh database with a `url()`,
/// `$first_step` the label of the backend's first migration.
#[cfg(any(feature = "postgres", feature = "mongo"))]
macro_rules! database_backend_cases {
    ($backend:literal, $db:ty, $first_step:literal) => {
        fn env(url: &str) -> Vec<(&'static str, String)> {
            vec![
                ("TESSERA_STORAGE__BACKEND", $backend.into()),
                ("TESSERA_STORAGE__URL", url.to_owned()),
                ("TESSERA_STORAGE__ACQUIRE_TIMEOUT", "1s".into()),
                (
                    "TESSERA_TOKENS__SECRET",
                    concat!("e2e-", $backend, "-secret-e2e-secret-e2e-secret").into(),
                ),
            ]
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn server_keeps_users_and_tokens_across_restarts() {
            let db = <$db>::create().await;
            survives_restart(&env(db.url())).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn server_has_one_winner_of_fifty_concurrent_registrations() {
            let db = <$db>::create().await;
            let server = Server::start(&env(db.url()));
            one_winner_of_fifty(&server).await;
            server.stop();
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn throttling_is_shared_between_replicas() {
            let db = <$db>::create().await;
            super::throttling_is_shared_between_replicas(&env(db.url())).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn admin_cli_manages_accounts() {
            let db = <$db>::create().await;
            super::admin_cli_manages_accounts(&env(db.url())).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn without_auto_migrate_serve_refuses_an_old_schema_until_migrated() {
            let db = <$db>::create().await;
            serve_refuses_an_old_schema_until_migrated(&env(db.url()), $first_step).await;
        }

        /// The scaling-out story: three processes over one database share
        /// users, sessions, revocation, throttling and keys.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn three_replicas_over_one_database_behave_as_one_server() {
            let db = <$db>::create().await;
            let keys = tempfile::tempdir().unwrap();
            let keys_dir = keys.path().display().to_string();
            run_ok(
                &[],
                &["keys", "generate", "--alg", "EdDSA", "--out", &keys_dir],
            );
            let mut env = env(db.url());
            env.push(("TESSERA_TOKENS__ALGORITHM", "EdDSA".into()));
            env.push(("TESSERA_TOKENS__KEYS_DIR", keys_dir));
            env.push(("TESSERA_THROTTLE__MAX_FAILURES", "3".into()));
            let [a, b, c] = [
                Server::start(&env),
                Server::start(&env),
                Server::start(&env),
            ];

            assert_eq!(a.register("everywhere").await, StatusCode::CREATED);
            let login: Value = b.login("everywhere").await.json().await.unwrap();
            let refreshed: Value = c
                .post_form(
                    "/token",
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", login["refresh_token"].as_str().unwrap()),
                    ],
                )
                .await
                .json()
                .await
                .unwrap();
            let access = refreshed["access_token"].as_str().expect("refreshed on c");
            assert_eq!(b.me(access).await, StatusCode::OK);
            let revoked = a
                .post_form(
                    "/revoke",
                    &[("token", refreshed["refresh_token"].as_str().unwrap())],
                )
                .await;
            assert_eq!(revoked.status(), StatusCode::OK);
            assert_eq!(
                b.me(access).await,
                StatusCode::UNAUTHORIZED,
                "revoked on a, refused on b"
            );

            let mut jwks = Vec::new();
            for server in [&a, &b, &c] {
                let body: Value = server
                    .http
                    .get(server.url("/.well-known/jwks.json"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                jwks.push(body);
            }
            assert!(jwks.iter().all(|k| *k == jwks[0]), "one key set");

            for server in [&a, &b, &c] {
                assert!(login_with(server, "everywhere", "wrong guess")
                    .await
                    .is_none());
            }
            let throttled = a
                .post_form(
                    "/token",
                    &[
                        ("grant_type", "password"),
                        ("username", "everywhere"),
                        ("password", PASSWORD),
                    ],
                )
                .await;
            assert_eq!(
                throttled.status(),
                StatusCode::TOO_MANY_REQUESTS,
                "counted across all three"
            );
            for server in [a, b, c] {
                server.stop();
            }
        }
    };
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use store_sql::test_support::TestDatabase;

    database_backend_cases!("postgres", TestDatabase, "20261128000001 users");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn database_outage_gives_503_and_the_server_recovers_by_itself() {
        let db = TestDatabase::create().await;
        let proxy = proxy::Proxy::start("127.0.0.1:5432".into()).await;
        let via_proxy = db
            .url()
            .replacen("127.0.0.1:5432", &proxy.addr.to_string(), 1);
        assert_ne!(
            via_proxy,
            db.url(),
            "test database must be on 127.0.0.1:5432"
        );
        outage_gives_503_and_recovery_needs_no_restart(&env(&via_proxy), &proxy).await;
    }
}

/// With `auto_migrate = false`, `serve` refuses a fresh database and names
/// the command; `tessera migrate` applies `first_step` first and is then a
/// no-op; afterwards the server starts.
#[cfg(any(feature = "postgres", feature = "mongo"))]
async fn serve_refuses_an_old_schema_until_migrated(env: &[(&str, String)], first_step: &str) {
    let mut manual = env.to_vec();
    manual.push(("TESSERA_STORAGE__AUTO_MIGRATE", "false".into()));

    let refused = tessera(&manual).output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("tessera migrate"), "{stderr}");

    let migrate = tessera(&manual).arg("migrate").output().unwrap();
    assert!(migrate.status.success());
    let stdout = String::from_utf8_lossy(&migrate.stdout);
    assert!(
        stdout.contains(&format!("applied {first_step}")),
        "{stdout}"
    );
    let again = tessera(&manual).arg("migrate").output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    let server = Server::start(&manual);
    assert_eq!(server.register("migrated").await, StatusCode::CREATED);
    server.stop();
}

/// A server whose database sits behind `proxy`: cutting the proxy gives 503
/// problem responses (no hang) and a failing `/readyz`; restoring it brings
/// everything back without a restart.
#[cfg(any(feature = "postgres", feature = "mongo"))]
async fn outage_gives_503_and_recovery_needs_no_restart(
    env: &[(&str, String)],
    proxy: &proxy::Proxy,
) {
    let server = Server::start(env);
    assert_eq!(server.register("steady").await, StatusCode::CREATED);
    let token = server.token("steady").await;

    proxy.cut();
    let started = std::time::Instant::now();
    let during = server
        .http
        .get(server.url("/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(during.headers()["content-type"], "application/problem+json");
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        server.register("during").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    proxy.restore();
    let mut recovered = false;
    for _ in 0..75 {
        if server.me(&token).await == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the server came back without a restart");
    let ready_again = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready_again.status(), StatusCode::OK, "readiness flips back");
    assert_eq!(server.register("after").await, StatusCode::CREATED);
    server.stop();
}

#[cfg(any(feature = "postgres", feature = "mongo"))]
/// A TCP proxy in front of a database that the test can cut and restore,
/// so an outage is simulated without stopping the shared server.
mod proxy {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    pub struct Proxy {
        pub addr: SocketAddr,
        up: Arc<AtomicBool>,
        generation: watch::Sender<u64>,
    }

    impl Proxy {
        pub async fn start(upstream: String) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let up = Arc::new(AtomicBool::new(true));
            let (generation, _) = watch::channel(0u64);
            let accepting_up = Arc::clone(&up);
            let cuts = generation.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !accepting_up.load(Ordering::SeqCst) {
                        drop(client); // refused while down
                        continue;
                    }
                    let mut cut = cuts.subscribe();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            });
            Self {
                addr,
                up,
                generation,
            }
        }

        /// Drops every live connection and refuses new ones.
        pub fn cut(&self) {
            self.up.store(false, Ordering::SeqCst);
            self.generation.send_modify(|g| *g += 1);
        }

        pub fn restore(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(feature = "mongo")]
mod mongo {
    use super::*;
    use store_mongo::test_support::TestDatabase;

    database_backend_cases!("mongo", TestDatabase, "20261129000001 users");

    /// Operator injection is impossible by construction: usernames that look
    /// like query operators are refused by validation, emails that contain
    /// them are stored and matched literally, and a JSON object where a
    /// string belongs is a 422.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operator_lookalikes_are_refused_or_taken_literally() {
        let db = TestDatabase::create().await;
        let server = Server::start(&env(db.url()));
        assert_eq!(server.register("victim").await, StatusCode::CREATED);
        for name in [r#"{"$ne": ""}"#, "$where", "$gt"] {
            let reply = server
                .http
                .post(server.url("/users"))
                .json(&json!({"username": name, "email": "x@example.org", "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
            assert!(
                login_with(&server, name, PASSWORD).await.is_none(),
                "{name}"
            );
        }
        let as_object = server
            .http
            .post(server.url("/users"))
            .json(&json!({"username": {"$ne": ""}, "email": "y@example.org", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(as_object.status(), StatusCode::UNPROCESSABLE_ENTITY);

        // `$` and braces are legal in an email's local part: kept verbatim.
        let literal = "$where.{$ne}@example.org";
        let reply = server
            .http
            .post(server.url("/users"))
            .json(&json!({"username": "literal", "email": literal, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::CREATED);
        let token = login_with(&server, literal, PASSWORD)
            .await
            .expect("log in by the literal email");
        let me: Value = server
            .http
            .get(server.url("/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["email"], literal);
        assert_eq!(me["username"], "literal");
        assert!(
            login_with(&server, "$WHERE.{$NE}@example.org", PASSWORD)
                .await
                .is_some(),
            "matched by its case-insensitive key, as any email"
        );
        server.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn database_outage_gives_503_and_the_server_recovers_by_itself() {
        let db = TestDatabase::create().await;
        let server_url = std::env::var(store_mongo::test_support::TEST_URL_VAR).unwrap();
        let authority = server_url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default())
            .unwrap();
        // A real mongod with users: keep them, authenticating against `admin`.
        let (credentials, auth_source, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (format!("{credentials}@"), "&authSource=admin", hosts),
            None => (String::new(), "", authority),
        };
        let proxy = proxy::Proxy::start(hosts.split(',').next().unwrap().to_owned()).await;
        // directConnection: talk to the proxy, not to the members the
        // server's replica-set handshake announces.
        let via_proxy = format!(
            "mongodb://{credentials}{}/{}?directConnection=true{auth_source}",
            proxy.addr,
            db.name()
        );
        outage_gives_503_and_recovery_needs_no_restart(&env(&via_proxy), &proxy).await;
    }
}
