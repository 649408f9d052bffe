//! Choosing the store: one `match` over the configured backend, each arm
//! compiled only with its cargo feature (statically dispatched from there).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use auth_core::{Store, StoreError};
use poem::listener::{Acceptor, TcpAcceptor};
use poem::Server;

use crate::admin::AdminCommand;
use crate::config::{Backend, Config};
use crate::state::build_state;

/// What to do once the store is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    Migrate,
    Admin(AdminCommand),
}

/// Opens the configured store and runs `command` on it.
pub async fn run(config: Config, command: Command) -> anyhow::Result<()> {
    /// One arm: open the store when the feature is compiled in, else explain.
    macro_rules! with_backend {
        ($feature:literal, $open:path) => {{
            #[cfg(feature = $feature)]
            {
                let store = $open(&config).await?;
                with_store(store, &config, command).await
            }
            #[cfg(not(feature = $feature))]
            {
                Err(compiled_out($feature))
            }
        }};
    }
    if config.storage.backend == Backend::Memory && matches!(command, Command::Admin(_)) {
        anyhow::bail!(
            "admin commands need a persistent store: the memory backend lives inside the \
             server process, so a separate `tessera` command cannot reach it"
        );
    }
    match config.storage.backend {
        Backend::Memory => with_backend!("memory", open_memory),
        Backend::Sqlite => with_backend!("sqlite", open_sqlite),
        Backend::Postgres => with_backend!("postgres", open_postgres),
        Backend::Mongo => with_backend!("mongo", open_mongo),
    }
}

#[allow(dead_code)]
fn compiled_out(feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "storage.backend = \"{feature}\" is not compiled into this build; \
         rebuild with `--features {feature}` (or `--all-features`)"
    )
}

#[cfg(feature = "memory")]
async fn open_memory(_config: &Config) -> anyhow::Result<store_memory::MemoryStore> {
    Ok(store_memory::MemoryStore::new())
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(config: &Config) -> anyhow::Result<store_sqlite::SqliteStore> {
    let settings = store_sqlite::SqliteSettings {
        url: config.storage.url.clone(),
        max_connections: config.storage.max_connections,
        acquire_timeout: config.storage.acquire_timeout,
    };
    connect_with_retry("sqlite", config.storage.connect_timeout, || {
        store_sqlite::SqliteStore::connect(&settings)
    })
    .await
}

#[cfg(feature = "postgres")]
async fn open_postgres(config: &Config) -> anyhow::Result<store_postgres::PostgresStore> {
    let settings = store_postgres::PostgresSettings {
        url: config.storage.url.clone(),
        max_connections: config.storage.max_connections,
        acquire_timeout: config.storage.acquire_timeout,
    };
    connect_with_retry("postgres", config.storage.connect_timeout, || {
        store_postgres::PostgresStore::connect(&settings)
    })
    .await
}

#[cfg(feature = "mongo")]
async fn open_mongo(config: &Config) -> anyhow::Result<store_mongo::MongoStore> {
    let settings = store_mongo::MongoSettings {
        url: config.storage.url.clone(),
        max_connections: config.storage.max_connections,
        acquire_timeout: config.storage.acquire_timeout,
    };
    connect_with_retry("mongo", config.storage.connect_timeout, || {
        store_mongo::MongoStore::connect(&settings)
    })
    .await
}

/// Retries a store that is not up yet (containers start in any order), with
/// exponential backoff, until `timeout`; other errors fail at once.
pub async fn connect_with_retry<S, F, Fut>(
    backend: &str,
    timeout: Duration,
    mut connect: F,
) -> anyhow::Result<S>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    loop {
        match connect().await {
            Ok(store) => return Ok(store),
            Err(StoreError::Unavailable(reason)) if Instant::now() + delay < deadline => {
                tracing::warn!(backend, %reason, retry_in_ms = delay.as_millis() as u64, "store not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => {
                return Err(anyhow::anyhow!(
                    "cannot open the {backend} store (storage.url): {err}"
                ))
            }
        }
    }
}

async fn with_store<S: Store>(store: S, config: &Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let applied = store.migrate().await.context("migration failed")?;
            if applied.is_empty() {
                println!("{}: schema is up to date", store.backend_name());
            }
            for step in applied {
                println!("{}: applied {step}", store.backend_name());
            }
            Ok(())
        }
        Command::Serve => {
            prepare_schema(&store, config).await?;
            serve(store, config).await
        }
        Command::Admin(admin) => {
            prepare_schema(&store, config).await?;
            let state = build_state(store, config)?;
            crate::admin::run(&state, admin).await
        }
    }
}

/// Migrates, or with `auto_migrate = false` refuses an out-of-date schema.
async fn prepare_schema<S: Store>(store: &S, config: &Config) -> anyhow::Result<()> {
    if config.storage.auto_migrate {
        for step in store.migrate().await.context("migration failed")? {
            tracing::info!(backend = store.backend_name(), %step, "applied migration");
        }
        return Ok(());
    }
    let pending = store.pending_migrations().await?;
    anyhow::ensure!(
        pending.is_empty(),
        "the {} schema is out of date (pending: {}); run `tessera migrate` \
         (or `cargo xtask migrate --backend {} --url ...`), or set storage.auto_migrate = true",
        store.backend_name(),
        pending.join(", "),
        store.backend_name(),
    );
    Ok(())
}

async fn serve<S: Store>(store: S, config: &Config) -> anyhow::Result<()> {
    let backend = store.backend_name();
    let state = build_state(store, config)?;
    let purger = tokio::spawn(purge_periodically(
        std::sync::Arc::clone(&state),
        config.server.purge_interval,
    ));
    let listener = tokio::net::TcpListener::bind(config.server.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.addr))?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("listener has no address")?;
    tracing::info!(%addr, backend, "listening on http://{addr}");
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            crate::app(state),
            shutdown_signal(),
            Some(config.server.shutdown_grace),
        )
        .await?;
    purger.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Deletes expired and revoked sessions now and then, so the tables do not
/// grow without bound. Failures are logged and retried next time.
async fn purge_periodically<S: Store>(state: std::sync::Arc<crate::AppState<S>>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        ticks.tick().await;
        state.rate_limiter.forget_idle();
        match state.service.purge_expired().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "deleted expired and revoked sessions"),
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
