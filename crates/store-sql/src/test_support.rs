//! Throwaway PostgreSQL databases for tests.
//!
//! Each [`TestDatabase`] is a fresh, uniquely named database on the server
//! named by `TESSERA_TEST_POSTGRES_URL` (default: the local trust-auth
//! server), dropped when the guard drops. An unreachable server is a test
//! failure with instructions, never a skip.

use sqlx::{Connection, PgConnection};
use store_conformance::throwaway;

/// The environment variable naming the test server.
pub const TEST_URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

/// Where tests find PostgreSQL unless told otherwise.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance-database URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var(TEST_URL_VAR).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A database that exists for as long as this value.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    admin_url: String,
    url: String,
}

impl TestDatabase {
    /// Creates `tessera_test_<random>`. Panics (failing the test) with a
    /// how-to-fix message when PostgreSQL is not reachable.
    #[allow(clippy::expect_used)]
    pub async fn create() -> Self {
        let admin_url = admin_url();
        let name = throwaway::database_name();
        let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url}: {e}\n\
                 Start it (Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)\n\
                 or point {TEST_URL_VAR} at a server whose user may CREATE DATABASE."
            )
        });
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let url = throwaway::with_database(&admin_url, &name);
        Self {
            name,
            admin_url,
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        throwaway::drop_database(&self.name, move || async move {
            let mut conn = PgConnection::connect(&admin_url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        });
    }
}
