//! The shared store behaviour, on a real MongoDB-wire server: every test gets
//! a fresh database that is dropped afterwards.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use auth_core::{DatabaseUrl, Lifecycle, StoreSettings};
use store_mongo::test_support::TestDatabase;
use store_mongo::MongoStore;

async fn fresh_store() -> (MongoStore, TestDatabase) {
    let db = TestDatabase::create().await;
    let store = MongoStore::connect(&settings(&db)).await.expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

fn settings(db: &TestDatabase) -> StoreSettings {
    StoreSettings {
        url: DatabaseUrl::new(db.url()),
        max_connections: 16,
        acquire_timeout: std::time::Duration::from_secs(10),
    }
}

store_conformance::conformance_tests!(mongo, fresh_store());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_step_once() {
    let db = TestDatabase::create().await;
    let a = MongoStore::connect(&settings(&db)).await.expect("connect");
    let b = MongoStore::connect(&settings(&db)).await.expect("connect");
    assert_eq!(
        a.database_name(),
        db.name(),
        "the URL's path names the database"
    );
    let pending = a.pending_migrations().await.expect("pending");
    assert_eq!(pending.len(), 9);
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.expect("migrate a"), rb.expect("migrate b"));
    let mut applied = ra.clone();
    applied.extend(rb.clone());
    applied.sort();
    assert_eq!(applied, pending, "each step applied by exactly one process");
    assert!(a.migrate().await.expect("third run").is_empty());
    assert!(b.pending_migrations().await.expect("pending").is_empty());
    a.close().await;
    b.close().await;
}
