//! The shared store behaviour on both SQL dialects: SQLite in a temporary
//! folder, and a real PostgreSQL where every test gets a fresh database that
//! is dropped afterwards.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use auth_core::{DatabaseUrl, Lifecycle, StoreSettings};
use store_sql::test_support::TestDatabase;
use store_sql::{PostgresStore, SqliteStore};

fn settings(url: String, max_connections: u32) -> StoreSettings {
    StoreSettings {
        url: DatabaseUrl::new(url),
        max_connections,
        acquire_timeout: Duration::from_secs(10),
    }
}

fn sqlite_settings(file: &Path) -> StoreSettings {
    settings(format!("sqlite://{}", file.display()), 8)
}

async fn fresh_sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::connect(&sqlite_settings(&dir.path().join("tessera.db")))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, dir)
}

async fn fresh_postgres() -> (PostgresStore, TestDatabase) {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect(&settings(db.url().to_owned(), 16))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

store_conformance::conformance_tests!(sqlite, fresh_sqlite());
store_conformance::conformance_tests!(postgres, fresh_postgres());

#[tokio::test]
async fn sqlite_migrations_report_what_they_apply_and_are_idempotent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::connect(&sqlite_settings(&dir.path().join("nested/tessera.db")))
        .await
        .expect("connect creates the folder and file");
    let pending = store.pending_migrations().await.expect("pending");
    assert!(!pending.is_empty());
    assert_eq!(store.migrate().await.expect("migrate"), pending);
    assert!(store
        .pending_migrations()
        .await
        .expect("pending")
        .is_empty());
    assert!(store.migrate().await.expect("second run").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_migrations_apply_each_step_once() {
    let db = TestDatabase::create().await;
    let a = PostgresStore::connect(&settings(db.url().to_owned(), 4))
        .await
        .expect("connect");
    let b = PostgresStore::connect(&settings(db.url().to_owned(), 4))
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

#[test]
fn both_dialects_have_the_same_migrations() {
    let names = |dialect: &str| {
        let mut names: Vec<String> = std::fs::read_dir(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dialect),
        )
        .expect("migrations folder")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
        names.sort();
        names
    };
    assert_eq!(names("sqlite"), names("postgres"));
}
