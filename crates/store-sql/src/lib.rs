//! The parts of the SQLite and PostgreSQL stores that are the same whatever
//! the dialect. The SQL itself stays in each store crate.

use auth_core::store::StoreError;
use auth_core::User;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use uuid::Uuid;

/// The `users` columns every query selects, in [`UserRow`] order.
pub const USER_COLUMNS: &str = "id, username, email, password_hash, created_at, disabled";

/// A `users` row as both dialects return it.
#[derive(Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            username: row.username,
            email: row.email,
            password_hash: row.password_hash,
            created_at: row.created_at,
            disabled: row.disabled,
        }
    }
}

/// `UPDATE`/`DELETE` of one row by id: zero rows means no such record.
pub fn require_found(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// The migrations of `migrator` not in `applied`, as `"<version> <description>"`.
pub fn pending_migrations(migrator: &Migrator, applied: &[i64]) -> Vec<String> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect()
}

/// Driver errors that mean "the database is not reachable right now",
/// whatever the dialect: worth a 503 and a retry, not a 500.
pub fn is_connectivity_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}
