//! The shared store behaviour, on a real PostgreSQL: every test gets a fresh
//! database that is dropped afterwards.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use auth_core::Store;
use store_postgres::test_support::TestDatabase;
use store_postgres::{PostgresSettings, PostgresStore};

async fn fresh_store() -> (PostgresStore, TestDatabase) {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect(&settings(&db))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

fn settings(db: &TestDatabase) -> PostgresSettings {
    PostgresSettings {
        url: db.url().to_owned(),
        max_connections: 16,
        acquire_timeout: std::time::Duration::from_secs(10),
    }
}

store_conformance::conformance_tests!(postgres, fresh_store());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_step_once() {
    let db = TestDatabase::create().await;
    let a = PostgresStore::connect(&settings(&db))
        .await
        .expect("connect");
    let b = PostgresStore::connect(&settings(&db))
        .await
        .expect("connect");
    let pending = a.pending_migrations().await.expect("pending");
    assert!(!pending.is_empty());
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.expect("migrate a"), rb.expect("migrate b"));
    let mut applied = ra.clone();
    applied.extend(rb.clone());
    assert_eq!(applied, pending, "each step applied by exactly one process");
    assert!(a.migrate().await.expect("third run").is_empty());
    a.close().await;
    b.close().await;
}
