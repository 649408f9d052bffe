//! The SQLite dialect: Tessera's embedded default, one file, no setup.
//!
//! WAL mode lets readers run beside the single writer; a busy timeout turns
//! write contention into short waits instead of errors.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use auth_core::store::{StoreError, StoreSettings};
use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::rows::{SessionUserRow, JOINED_USER_COLUMNS, SESSIONS_WITH_USERS, SESSION_COLUMNS};
use crate::{map_error, Dialect, SqlStore};

type Db = Sqlite;

// The one implementation, compiled for this dialect (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "queries.rs"]
mod queries;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqlStore<Sqlite> {
    /// Opens (creating if missing) the database file of a `sqlite://` URL,
    /// and its folder.
    pub async fn connect(settings: &StoreSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(settings.url.expose())
            .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(folder) = options.get_filename().parent() {
            create_folder(folder)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            // A local file does not drop connections; skip the per-query ping.
            .test_before_acquire(false)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_error::<Sqlite>)?;
        Ok(Self::from_pool(pool))
    }
}

fn create_folder(folder: &Path) -> Result<(), StoreError> {
    if folder.as_os_str().is_empty() || folder.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(folder)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", folder.display())))
}

impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const MIGRATION_TABLE_EXISTS: &'static str =
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')";
    const SKIP_LOCKED: &'static str = "";
    const BYTE_ORDER: &'static str = "";
    const SESSION_WITH_TOKEN_INSERT: Option<&'static str> = None;

    /// Fixed-width RFC 3339 UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
    type Time = String;

    fn user_page_as_json(page: &str) -> Option<String> {
        Some(format!(
            "SELECT json_group_array(json_object(\
             'id', hex(id), 'username', username, 'username_key', username_key, \
             'email', email, 'created_at', created_at, \
             'disabled', disabled, 'email_verified', email_verified\
             )) FROM ({page}) AS page"
        ))
    }

    fn time(at: DateTime<Utc>) -> String {
        at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// SQLite reports "UNIQUE constraint failed: users.email_key".
    fn violated_unique(error: &dyn DatabaseError) -> Option<&str> {
        error.message().strip_prefix("UNIQUE constraint failed: ")
    }

    fn is_unavailable(error: &dyn DatabaseError) -> bool {
        error.message().contains("database is locked")
    }

    /// `BEGIN IMMEDIATE` already holds the database's one write lock.
    async fn lock_throttle_key(
        _conn: &mut SqliteConnection,
        _key: &str,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn slide_session(
        conn: &mut SqliteConnection,
        session_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<SessionUserRow>, sqlx::Error> {
        sqlx::query("UPDATE sessions SET expires_at = $1 WHERE id = $2")
            .bind(Self::time(expires_at))
            .bind(session_id)
            .execute(&mut *conn)
            .await?;
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} FROM {SESSIONS_WITH_USERS} WHERE s.id = $1"
        );
        sqlx::query_as(&sql)
            .bind(session_id)
            .fetch_optional(conn)
            .await
    }

    /// Each migration runs in a transaction that takes the write lock.
    async fn lock_migrations(_conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn unlock_migrations(_conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::fixed_width_time;

    #[test]
    fn stored_times_read_back_to_the_microsecond() {
        for text in [
            "2026-12-04T17:41:17.123456Z",
            "1999-02-28T00:00:00.000001Z",
            "2024-02-29T23:59:59.999999Z",
        ] {
            let at = DateTime::parse_from_rfc3339(text).expect("valid").to_utc();
            assert_eq!(Sqlite::time(at), text);
            assert_eq!(fixed_width_time(text), Some(at), "{text}");
        }
    }

    #[test]
    fn other_shapes_are_left_to_the_general_parser() {
        for text in [
            "2026-12-04T17:41:17Z",
            "2026-12-04T17:41:17.123456+00:00",
            "2026-13-04T17:41:17.123456Z",
            "2026-02-30T17:41:17.123456Z",
            "2026-12-04T25:41:17.123456Z",
            "2026-12-04T17:41:17.12345xZ",
            "2026-12-04 17:41:17.123456Z",
            "+026-12-04T17:41:17.123456Z",
        ] {
            assert_eq!(fixed_width_time(text), None, "{text}");
        }
    }
}
