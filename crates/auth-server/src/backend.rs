//! Choosing the store: one `match` over the configured backend, each arm
//! compiled only with its cargo feature (statically dispatched from there).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use auth_core::{Store, StoreError, StoreSettings};

use crate::admin::AdminCommand;
use crate::config::{Backend, Config};
use crate::connections::{self, ConnectionLimits};
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
    let settings = config.storage.store_settings();
    /// One arm: open the store when the feature is compiled in, else explain.
    macro_rules! with_backend {
        ($feature:literal, $connect:path) => {{
            #[cfg(feature = $feature)]
            {
                let timeout = config.storage.connect_timeout;
                let store = connect_with_retry($feature, &settings, timeout, $connect).await?;
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
        Backend::Sqlite => with_backend!("sqlite", store_sql::SqliteStore::connect),
        Backend::Postgres => with_backend!("postgres", store_sql::PostgresStore::connect),
        Backend::Mongo => with_backend!("mongo", store_mongo::MongoStore::connect),
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
async fn open_memory(_settings: &StoreSettings) -> Result<store_memory::MemoryStore, StoreError> {
    Ok(store_memory::MemoryStore::new())
}

/// Opens a store, retrying one that is not up yet (containers start in any
/// order) with exponential backoff until `timeout`; other errors fail at once.
pub async fn connect_with_retry<'a, S, F, Fut>(
    backend: &str,
    settings: &'a StoreSettings,
    timeout: Duration,
    connect: F,
) -> anyhow::Result<S>
where
    F: Fn(&'a StoreSettings) -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    loop {
        match connect(settings).await {
            Ok(store) => return Ok(store),
            Err(StoreError::Unavailable(reason)) if Instant::now() + delay < deadline => {
                tracing::warn!(backend, %reason, retry_in_ms = delay.as_millis() as u64, "store not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => {
                return Err(anyhow::anyhow!(
                    "cannot open the {backend} store (storage.url = {}): {err}",
                    settings.url
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
    let sender = std::sync::Arc::new(crate::mail::Sender::from_config(config)?);
    let mailer = tokio::spawn(crate::mail::outbox::send_periodically(
        std::sync::Arc::clone(&state),
        sender,
        config.mail.delivery_policy(),
        config.mail.poll_interval,
    ));
    let listener = tokio::net::TcpListener::bind(config.server.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.addr))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let limits = connection_limits(config);
    tracing::info!(
        max_connections = limits.max_connections,
        max_connections_per_address = limits.max_connections_per_address,
        "connection caps"
    );
    tracing::info!(%addr, backend, "listening on http://{addr}");
    crate::connections::serve(
        listener,
        crate::app(state),
        limits,
        shutdown_signal(),
        config.server.shutdown_grace,
    )
    .await?;
    purger.abort();
    mailer.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The connection limits configured, with the caps derived from the
/// open-file limit (raised to its hard limit first) where unset.
fn connection_limits(config: &Config) -> ConnectionLimits {
    let open_files = match connections::raise_open_file_limit() {
        Ok((soft, _hard)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit; assuming 1024");
            1024
        }
    };
    let max_connections = config.server.max_connections.unwrap_or_else(|| {
        connections::default_max_connections(open_files, config.storage.max_connections)
    });
    ConnectionLimits {
        header_read_timeout: config.server.header_read_timeout,
        body_read_timeout: config.server.body_read_timeout,
        keep_alive_timeout: config.server.keep_alive_timeout,
        max_connections,
        max_connections_per_address: config
            .server
            .max_connections_per_address
            .unwrap_or_else(|| connections::default_max_connections_per_address(max_connections)),
        trusted_proxies: config.rate_limit.trusted_proxies.clone(),
    }
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
