//! `cargo xtask migrate`: `tessera migrate` against the named database.

use anyhow::Result;

use crate::process::cargo;

pub fn run(backend: String, url: Option<String>) -> Result<()> {
    let mut env = vec![("TESSERA_STORAGE__BACKEND", backend)];
    if let Some(url) = url {
        env.push(("TESSERA_STORAGE__URL", url));
    }
    cargo(
        &[
            "run",
            "-q",
            "-p",
            "auth-server",
            "--all-features",
            "--",
            "migrate",
        ],
        &env,
    )
}
