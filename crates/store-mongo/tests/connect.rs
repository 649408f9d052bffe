//! Connecting: what a wrong URL and an absent server give. Neither needs a
//! MongoDB running.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use auth_core::StoreError;
use auth_core::{DatabaseUrl, StoreSettings};
use store_mongo::MongoStore;

fn settings(url: &str) -> StoreSettings {
    StoreSettings {
        url: DatabaseUrl::new(url),
        max_connections: 4,
        acquire_timeout: Duration::from_millis(500),
    }
}

#[tokio::test]
async fn a_server_that_is_not_there_is_unavailable_within_the_timeout() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = MongoStore::connect(&settings(&format!("mongodb://127.0.0.1:{port}/tessera")))
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the acquire timeout, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_malformed_url_is_a_configuration_error_not_an_outage() {
    for url in ["postgres://127.0.0.1/tessera", "mongodb://", "not a url"] {
        let err = MongoStore::connect(&settings(url))
            .await
            .expect_err("refused");
        match err {
            StoreError::Other(message) => {
                assert!(message.contains("invalid MongoDB URL"), "{url}: {message}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}
