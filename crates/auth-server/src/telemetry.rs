//! Logging: human-readable in dev, JSON in production.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, Profile};

pub fn init(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log.format.as_str() {
        "json" => true,
        "pretty" => false,
        _ => config.profile == Profile::Production,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
