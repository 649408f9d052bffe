//! `cargo xtask browser`: the hosted pages in a real browser. Debian's
//! Chromium (`apt-get install chromium`; never `playwright install`, which
//! downloads a browser) driven by PyPI's `playwright`, with Authlib as the
//! OAuth client that completes the code flow against the real binary.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::process::{cargo, python_env, run, workspace_root};

/// Pinned, installed into a git-ignored venv when missing.
const REQUIREMENTS: &[&str] = &[
    "playwright==1.65.2",
    "Authlib==1.9.10",
    "requests==2.34.2",
    "pytest==9.2.0",
];

/// Where the tests live (pytest files beside the Rust tests).
const TESTS: &str = "crates/auth-server/tests/browser";

pub fn run_tests(extra: &[String]) -> Result<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        bail!(
            "no Chromium at {chromium}: install Debian's (`apt-get install -y chromium`) or set \
             CHROMIUM to a Chromium binary"
        );
    }
    cargo(&["build", "-q", "-p", "auth-server", "--all-features"], &[])?;
    let python = python_env(".venv-browser", REQUIREMENTS)?;
    let root = workspace_root();
    run(Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(extra)
        .arg(root.join(TESTS))
        .env("TESSERA_TEST_BIN", root.join("target/debug/tessera"))
        .env("CHROMIUM", chromium)
        // The driver must never fetch a browser.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
}
