//! Logging: human-readable in dev, JSON in production.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat, Profile};

/// `to_stderr`: for commands whose standard output is their result
/// (`tessera user list`), logs go to standard error instead.
pub fn init(config: &Config, to_stderr: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => config.profile == Profile::Production,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match (json, to_stderr) {
        (true, false) => builder.json().try_init(),
        (true, true) => builder.json().with_writer(std::io::stderr).try_init(),
        (false, false) => builder.try_init(),
        (false, true) => builder.with_writer(std::io::stderr).try_init(),
    };
}
