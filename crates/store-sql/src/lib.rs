//! Tessera's SQL store: one implementation for SQLite (the embedded default)
//! and PostgreSQL.
//!
//! # How one implementation serves two databases
//!
//! Every query, row mapping and error mapping is written once, in
//! `queries.rs`, against a type alias `Db`. That file is compiled once per
//! enabled dialect (`sqlite.rs` and `postgres.rs` each include it as a
//! module with their own `Db`), so the code is monomorphic — no generic
//! `sqlx` bounds, no per-query dispatch — but exists in one copy.
//!
//! What really differs between the two databases is named in one place,
//! the [`Dialect`] trait, implemented once per database: how a time is
//! encoded, how a unique violation names its constraint, which errors mean
//! "the database is not reachable", how a write transaction and a per-key
//! lock are taken, one statement PostgreSQL can fuse that SQLite cannot,
//! and how migration runs are serialised. Both dialects use `$1`-style
//! placeholders (SQLite accepts them), `RETURNING` and `ON CONFLICT`.
//!
//! Adding a table: one migration in `migrations/sqlite` and one in
//! `migrations/postgres`, and its queries once in `queries.rs`.

use std::future::Future;

use auth_core::store::{StoreError, UniqueField};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::{Database, Pool};

mod rows;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use auth_core::store::StoreSettings;

/// The SQL store over database `D` ([`sqlx::Sqlite`] or [`sqlx::Postgres`]).
/// Cheap to clone: a pool handle.
pub struct SqlStore<D: Database> {
    pool: Pool<D>,
}

/// SQLite: one file, WAL mode, no setup.
#[cfg(feature = "sqlite")]
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

/// PostgreSQL: production, and several Tessera processes over one database.
#[cfg(feature = "postgres")]
pub type PostgresStore = SqlStore<sqlx::Postgres>;

impl<D: Database> SqlStore<D> {
    fn from_pool(pool: Pool<D>) -> Self {
        Self { pool }
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl<D: Database> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self::from_pool(self.pool.clone())
    }
}

impl<D: Database> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &D::NAME)
            .field("pool", &self.pool)
            .finish()
    }
}

/// What differs between the SQL databases, and nothing else.
pub trait Dialect: Database {
    /// The backend's short name (`sqlite`, `postgres`).
    const BACKEND: &'static str;

    /// The statement that opens a transaction which will write: SQLite
    /// must take its write lock up front (`BEGIN IMMEDIATE`), or two
    /// readers that both decide to write deadlock.
    const BEGIN_WRITE: &'static str;

    /// A query answering whether sqlx's migration table exists yet.
    const MIGRATION_TABLE_EXISTS: &'static str;

    /// Inserting a session and its first refresh token in one statement,
    /// bound like [`SESSION_INSERT`](crate::rows::SESSION_INSERT) followed by
    /// the token's digest, issue and expiry times — where the database can
    /// (PostgreSQL: a data-modifying CTE, one round trip instead of four).
    /// `None`: two inserts in a transaction (SQLite, in-process anyway).
    const SESSION_WITH_TOKEN_INSERT: Option<&'static str>;

    /// Appended to the outbox claim's row selection: PostgreSQL skips rows
    /// another sender is claiming (`FOR UPDATE SKIP LOCKED`) instead of
    /// waiting for them; SQLite's write transaction already serialises
    /// claims.
    const SKIP_LOCKED: &'static str;

    /// Appended to a text column so it compares and sorts byte by byte,
    /// as the other stores do: the account list's order and cursor must not
    /// depend on the database's collation (PostgreSQL: `COLLATE "C"`, which
    /// the `users_*_bytes` indexes match; SQLite's default is already binary).
    const BYTE_ORDER: &'static str;

    /// Wraps `page`, a statement selecting
    /// [`USER_SUMMARY_COLUMNS`](rows::USER_SUMMARY_COLUMNS), so the whole
    /// page comes back as one row: a JSON array of
    /// [`UserSummaryRow`](rows::UserSummaryRow) objects (in `page`'s order
    /// in practice; the caller checks) — where that is cheaper than rows.
    /// SQLite hands each row over from its worker thread, so 100 rows cost
    /// 100 hand-overs (most of a page's time); one row, one. PostgreSQL streams rows cheaply and
    /// building JSON there costs more (`None`). Both measured by `cargo
    /// xtask bench` (the admin scenario).
    fn user_page_as_json(page: &str) -> Option<String>;

    /// How times are bound: PostgreSQL has `timestamptz`; SQLite stores
    /// fixed-width RFC 3339 text, so that comparing strings compares times.
    type Time: for<'q> sqlx::Encode<'q, Self> + sqlx::Type<Self> + Send + Sync + 'static;

    fn time(at: chrono::DateTime<chrono::Utc>) -> Self::Time;

    /// The migrations of this dialect, embedded at build time.
    fn migrator() -> &'static Migrator;

    /// The name of the unique constraint (or, for SQLite, `table.column`)
    /// a violation reports; the shared mapping turns it into a field.
    fn violated_unique(error: &dyn DatabaseError) -> Option<&str>;

    /// Database errors that mean "not reachable right now" (503, retry).
    fn is_unavailable(error: &dyn DatabaseError) -> bool;

    /// Serialises writers of one throttle key inside a transaction opened
    /// with [`Dialect::BEGIN_WRITE`], even before the key's row exists.
    fn lock_throttle_key(
        conn: &mut Self::Connection,
        key: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Moves a session's expiry to `expires_at` and returns it with its
    /// user. PostgreSQL does this in one statement (a data-modifying CTE);
    /// SQLite has none, so it updates, then reads.
    fn slide_session(
        conn: &mut Self::Connection,
        session_id: uuid::Uuid,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Option<rows::SessionUserRow>, sqlx::Error>> + Send;

    /// Held around a whole migration run, so that of two processes
    /// migrating at once each reports exactly the steps it applied.
    fn lock_migrations(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    fn unlock_migrations(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// One mapping from driver errors to the domain's, for both dialects, so no
/// driver text reaches a client and unique violations name their field.
fn map_error<D: Dialect>(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            match D::violated_unique(db.as_ref()).and_then(unique_field) {
                Some(field) => StoreError::Conflict(field),
                None => StoreError::Other(err.to_string()),
            }
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        sqlx::Error::Database(db) if D::is_unavailable(db.as_ref()) => {
            StoreError::Unavailable(err.to_string())
        }
        // The server went away mid-conversation.
        sqlx::Error::Protocol(_) => StoreError::Unavailable(err.to_string()),
        e if is_connectivity_error(e) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Other(err.to_string()),
    }
}

/// Which account field a unique constraint guards. Constraints and indexes
/// are named after the key column they cover in both dialects
/// (`users_username_key_unique`, SQLite's `users.username_key`).
fn unique_field(constraint: &str) -> Option<UniqueField> {
    if constraint.contains("username_key") {
        Some(UniqueField::Username)
    } else if constraint.contains("email_key") {
        Some(UniqueField::Email)
    } else if constraint.starts_with("clients") {
        Some(UniqueField::ClientId)
    } else if constraint.starts_with("factors") {
        Some(UniqueField::Factor)
    } else {
        None
    }
}

/// Driver errors that mean "the database is not reachable right now",
/// whatever the dialect: worth a 503 and a retry, not a 500.
fn is_connectivity_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_constraints_name_their_field_in_both_dialects() {
        assert_eq!(
            unique_field("users_username_key_unique"),
            Some(UniqueField::Username)
        );
        assert_eq!(unique_field("users.email_key"), Some(UniqueField::Email));
        assert_eq!(unique_field("refresh_tokens_pkey"), None);
        assert_eq!(unique_field("clients_pkey"), Some(UniqueField::ClientId));
        assert_eq!(unique_field("clients.id"), Some(UniqueField::ClientId));
        assert_eq!(
            unique_field("factors_one_app_per_user"),
            Some(UniqueField::Factor)
        );
        assert_eq!(
            unique_field("factors.credential_id"),
            Some(UniqueField::Factor)
        );
    }
}
