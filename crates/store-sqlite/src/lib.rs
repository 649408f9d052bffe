//! The SQLite store: Tessera's embedded default, one file, no setup.
//!
//! WAL mode lets readers run beside the single writer; a busy timeout turns
//! write contention into short waits instead of errors.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use auth_core::store::{Store, StoreError, UniqueField, UserStore};
use auth_core::{NewUser, User};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use store_sql::{pending_migrations, require_found, UserRow, USER_COLUMNS};
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection settings.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    /// `sqlite://path/to/file.db` (the file and its folder are created).
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(settings: &SqliteSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&settings.url)
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
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self { pool })
    }
}

fn create_folder(folder: &Path) -> Result<(), StoreError> {
    if folder.as_os_str().is_empty() || folder.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(folder)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", folder.display())))
}

/// One mapping from driver errors to the domain's, so no driver text
/// reaches a client and unique violations name their field.
fn map_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // SQLite reports "UNIQUE constraint failed: users.email_key".
            if db.message().contains("email_key") {
                StoreError::Conflict(UniqueField::Email)
            } else if db.message().contains("username_key") {
                StoreError::Conflict(UniqueField::Username)
            } else {
                StoreError::Other(err.to_string())
            }
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(err.to_string())
        }
        e if store_sql::is_connectivity_error(e) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Other(err.to_string()),
    }
}

impl SqliteStore {
    async fn find_user_where(&self, column: &str, value: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = ?");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(User::from))
    }

    async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        if table.is_none() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }
}

impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash, created_at, disabled) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(user.id)
        .bind(user.username.as_str())
        .bind(user.username.key())
        .bind(user.email.as_str())
        .bind(user.email.key())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(User::from))
    }

    async fn find_user_by_username(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.find_user_where("username_key", username_key).await
    }

    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        self.find_user_where("email_key", email_key).await
    }

    async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        require_found(done.rows_affected())
    }

    async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
            .bind(disabled)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        require_found(done.rows_affected())
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }
}

impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let before = self.applied_versions().await?;
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        Ok(pending_migrations(&MIGRATOR, &before))
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(pending_migrations(
            &MIGRATOR,
            &self.applied_versions().await?,
        ))
    }
}
