//! What the PostgreSQL and MongoDB test databases share: naming, the URL of
//! a database on a server, and dropping it when a test ends.

use std::future::Future;

/// A fresh, unique database name (`tessera_test_<uuid>`).
pub fn database_name() -> String {
    format!("tessera_test_{}", uuid::Uuid::new_v4().simple())
}

/// Replaces the database path of a `scheme://authority/database?query` URL
/// (PostgreSQL and MongoDB both write them so), keeping its query.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[authority_start..]
        .find('/')
        .map(|j| authority_start + j)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..authority_end], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Runs `drop_database` to completion from a `Drop` impl. Drop runs inside a
/// test's runtime, where blocking on a future is not allowed, so the work
/// gets a thread and a runtime of its own. Failing to drop only warns: the
/// test's own outcome is what matters.
pub fn drop_database<F, Fut>(name: &str, drop_database: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>>,
{
    let dropped = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(drop_database())
    })
    .join();
    if !matches!(dropped, Ok(Ok(()))) {
        eprintln!("warning: could not drop test database {name}: {dropped:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("mongodb://h:27017/old?replicaSet=rs0", "x"),
            "mongodb://h:27017/x?replicaSet=rs0"
        );
        assert_eq!(
            with_database("mongodb://u:p@a:1,b:2/?tls=true", "x"),
            "mongodb://u:p@a:1,b:2/x?tls=true"
        );
    }
}
