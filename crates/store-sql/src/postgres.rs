//! The PostgreSQL dialect, for production and for running several Tessera
//! processes over one database.

use auth_core::store::{StoreError, StoreSettings};
use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::rows::{SessionUserRow, JOINED_USER_COLUMNS, SESSION_COLUMNS};
use crate::{map_error, Dialect, SqlStore};

type Db = Postgres;

// The one implementation, compiled for this dialect (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "queries.rs"]
mod queries;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Advisory-lock key serialising whole migration runs ("tessera" in ASCII).
const MIGRATION_REPORT_LOCK: i64 = 0x0074_6573_7365_7261;

impl SqlStore<Postgres> {
    /// Connects and proves the database answers. A database that is down
    /// fails here; retrying is the caller's policy.
    pub async fn connect(settings: &StoreSettings) -> Result<Self, StoreError> {
        let options: PgConnectOptions = settings
            .url
            .expose()
            .parse()
            .map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            // No ping before every query: it doubled the round trips of the
            // hot path (measured with `cargo xtask bench`). A connection that
            // died with the server fails its query once (a 503) and is
            // replaced; the outage test shows the recovery.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(map_error::<Postgres>)?;
        Ok(Self::from_pool(pool))
    }
}

impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const MIGRATION_TABLE_EXISTS: &'static str =
        "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    const SESSION_WITH_TOKEN_INSERT: Option<&'static str> = Some(
        "WITH s AS (INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at, scope, \
         client_id, auth_time, amr, browser_session_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id) \
         INSERT INTO refresh_tokens (digest, session_id, issued_at, expires_at) \
         SELECT $11, s.id, $12, $13 FROM s",
    );

    type Time = DateTime<Utc>;

    fn user_page_as_json(_page: &str) -> Option<String> {
        None
    }

    fn time(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn violated_unique(error: &dyn DatabaseError) -> Option<&str> {
        error.constraint()
    }

    /// Class 08 (connection exception), 57P01-03 (admin shutdown, crash,
    /// cannot connect now).
    fn is_unavailable(error: &dyn DatabaseError) -> bool {
        error
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
    }

    /// A transaction-scoped advisory lock on the key's hash: no row needed.
    async fn lock_throttle_key(conn: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(key)
            .execute(conn)
            .await
            .map(|_| ())
    }

    async fn slide_session(
        conn: &mut PgConnection,
        session_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<SessionUserRow>, sqlx::Error> {
        let sql = format!(
            "WITH s AS (UPDATE sessions SET expires_at = $1 WHERE id = $2 RETURNING *) \
             SELECT {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} FROM s JOIN users u ON u.id = s.user_id"
        );
        sqlx::query_as(&sql)
            .bind(expires_at)
            .bind(session_id)
            .fetch_optional(conn)
            .await
    }

    /// Our own advisory lock spans "what was applied before" and the run
    /// (sqlx's own lock covers only the run).
    async fn lock_migrations(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_REPORT_LOCK)
            .execute(conn)
            .await
            .map(|_| ())
    }

    async fn unlock_migrations(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_REPORT_LOCK)
            .execute(conn)
            .await
            .map(|_| ())
    }
}
