//! Several processes over one database behave as one server.

use crate::support::*;

/// Two processes on one database count one account's failures together.
pub async fn throttling_is_shared_between_replicas(env: &[(&str, String)]) {
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
