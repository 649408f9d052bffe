//! Per-address rate limits and memory bounds under a login flood.

use crate::support::*;

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

fn peak_rss_mib(server: &Server) -> f64 {
    server.process.status_kib("VmHWM:").unwrap() as f64 / 1024.0
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
    // Every client is 127.0.0.1: the per-address connection cap (derived
    // from the open-file limit) must not be what sheds them.
    env.push(("TESSERA_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "4096".into()));
    let server = std::sync::Arc::new(Server::start(&env));
    assert_eq!(server.register("crowd").await, StatusCode::CREATED);
    let token = server.token("crowd").await;
    let before = peak_rss_mib(&server);
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
    let peak = peak_rss_mib(&server);
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
