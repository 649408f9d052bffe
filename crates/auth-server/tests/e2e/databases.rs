//! The cases every networked database runs (PostgreSQL, MongoDB), written
//! once as a macro, and what is particular to each.

use crate::restart::{one_winner_of_fifty, survives_restart};
use crate::support::*;

/// The end-to-end cases every networked database backend runs, in the
/// module that expands it: `$backend` is the `storage.backend` value, `$db`
/// a type whose `create().await` gives a fresh database with a `url()`,
/// `$first_step` the label of the backend's first migration.
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
            crate::replicas::throttling_is_shared_between_replicas(&env(db.url())).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn admin_cli_manages_accounts() {
            let db = <$db>::create().await;
            crate::cli::admin_cli_manages_accounts(&env(db.url())).await;
        }

        /// The administration API and the audit log, CLI client included.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn admin_api_and_audit_log() {
            let db = <$db>::create().await;
            crate::admin::admin_api_and_audit_log(&env(db.url())).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn client_cli_manages_clients() {
            let db = <$db>::create().await;
            crate::code_flow::client_cli_manages_clients(&env(db.url())).await;
        }

        /// Each step of the browser flow on a different replica.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn code_flow_across_three_replicas() {
            let db = <$db>::create().await;
            crate::code_flow::code_flow_across_replicas(&env(db.url())).await;
        }

        /// Mail written during an SMTP outage on three replicas is sent
        /// once each when it ends; links work on any replica.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn mail_survives_an_outage_across_three_replicas() {
            let db = <$db>::create().await;
            crate::mail::mail_across_replicas(&env(db.url())).await;
        }

        /// A second factor set up on one replica guards sign-in on all;
        /// the password grant refuses the account; reset-factors.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn second_factor_across_replicas() {
            let db = <$db>::create().await;
            crate::factors::second_factor_across_replicas(&env(db.url())).await;
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
                let body: Value = server.get_json("/.well-known/jwks.json").await;
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
        let proxy = crate::outage::proxy::Proxy::start("127.0.0.1:5432".into()).await;
        let via_proxy = db
            .url()
            .replacen("127.0.0.1:5432", &proxy.addr.to_string(), 1);
        assert_ne!(
            via_proxy,
            db.url(),
            "test database must be on 127.0.0.1:5432"
        );
        crate::outage::outage_gives_503_and_recovery_needs_no_restart(&env(&via_proxy), &proxy)
            .await;
    }
}

/// With `auto_migrate = false`, `serve` refuses a fresh database and names
/// the command; `tessera migrate` applies `first_step` first and is then a
/// no-op; afterwards the server starts.
pub async fn serve_refuses_an_old_schema_until_migrated(env: &[(&str, String)], first_step: &str) {
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
        let me = server.me_json(&token).await;
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
        let proxy =
            crate::outage::proxy::Proxy::start(hosts.split(',').next().unwrap().to_owned()).await;
        // directConnection: talk to the proxy, not to the members the
        // server's replica-set handshake announces.
        let via_proxy = format!(
            "mongodb://{credentials}{}/{}?directConnection=true{auth_source}",
            proxy.addr,
            db.name()
        );
        crate::outage::outage_gives_503_and_recovery_needs_no_restart(&env(&via_proxy), &proxy)
            .await;
    }
}
