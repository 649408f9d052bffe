//! Tessera's server: HTTP API, configuration, backend selection and CLI.

pub mod admin;
pub mod api;
pub mod backend;
pub mod config;
pub mod connections;
pub mod instrumented;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod pages;
pub mod probe;
pub mod state;
pub mod telemetry;

pub use api::{app, AppState};
pub use config::Config;
