//! Graceful shutdown: SIGTERM lets in-flight requests finish.

use crate::support::*;

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
    let exit = server
        .process
        .wait_exit(Duration::from_secs(30))
        .unwrap()
        .expect("exited after draining");
    assert!(exit.success(), "clean exit after draining: {exit}");
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );
}
