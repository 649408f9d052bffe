//! `cargo xtask browser`: the hosted pages in a real browser. Debian's
//! Chromium (`apt-get install chromium`; never `playwright install`, which
//! downloads a browser) driven by PyPI's `playwright`, with Authlib and
//! npm's openid-client as the relying parties that complete the code flow
//! against the real binary.

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
    "aiosmtpd==1.4.6",
    // An independent TOTP implementation, to compute codes from the URI.
    "pyotp==2.9.0",
];

/// Where the tests live (pytest files beside the Rust tests).
const TESTS: &str = "crates/auth-server/tests/browser";

/// The openid-client relying party (a Node.js package with a lock file).
const RP: &str = "crates/auth-server/tests/browser/rp";

/// `npm ci` in the relying party's folder unless its lock file is what was
/// installed last time.
fn node_rp() -> Result<std::path::PathBuf> {
    let dir = workspace_root().join(RP);
    let lock = std::fs::read_to_string(dir.join("package-lock.json"))?;
    let stamp = dir.join("node_modules/.tessera-installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(lock.as_str()) {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir))?;
        std::fs::write(&stamp, &lock)?;
    }
    Ok(dir.join("rp.mjs"))
}

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
    let rp = node_rp()?;
    let root = workspace_root();
    run(Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(extra)
        .arg(root.join(TESTS))
        .env("TESSERA_TEST_BIN", root.join("target/debug/tessera"))
        .env("CHROMIUM", chromium)
        .env("TESSERA_TEST_RP", rp)
        // The driver must never fetch a browser.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
}
