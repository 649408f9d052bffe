//! End-to-end: the real `tessera` binary, configured only through
//! environment variables, on each backend. One test binary, a module per
//! concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod cli;
mod code_flow;
mod connections;
#[cfg(any(feature = "postgres", feature = "mongo"))]
mod databases;
mod factors;
mod keys;
mod limits;
mod mail;
#[cfg(any(feature = "postgres", feature = "mongo"))]
mod outage;
mod replicas;
mod restart;
mod secrets;
mod shutdown;
#[path = "../common/smtp.rs"]
mod smtp;
mod support;
#[path = "../common/totp.rs"]
mod totp;
