//! `cargo xtask api-fuzz`: schemathesis against the live server's own
//! OpenAPI document.

use std::process::Command;

use anyhow::{Context, Result};

use crate::bench;
use crate::process::{cargo, python_tool, run as run_command, workspace_root};

/// The schema-based API fuzzer, pinned.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Starts the server (memory backend, debug build) and runs schemathesis on
/// its `/openapi.json` with a valid bearer token: any 5xx, or any response
/// that does not match the documented status codes, content types, headers
/// or schemas, fails the run.
pub fn run() -> Result<()> {
    let schemathesis = python_tool("schemathesis", SCHEMATHESIS)?;
    cargo(&["build", "-q", "-p", "auth-server", "--all-features"], &[])?;
    let data = tempfile::tempdir()?;
    let server = bench::server::Server::start(
        &workspace_root().join("target/debug/tessera"),
        &[
            ("TESSERA_STORAGE__BACKEND", "memory".into()),
            ("TESSERA_DATA_DIR", data.path().display().to_string()),
            ("TESSERA_PASSWORDS__MEMORY_KIB", "1024".into()),
            ("TESSERA_PASSWORDS__ITERATIONS", "1".into()),
            ("TESSERA_RATE_LIMIT__PER_MINUTE", "0".into()),
            ("TESSERA_THROTTLE__MAX_FAILURES", "1000000".into()),
        ],
    )?;
    let addr = server.addr;
    let token = tokio::runtime::Runtime::new()?.block_on(async {
        use bench::load::call;
        let body = r#"{"username":"fuzzer","email":"fuzzer@example.org","password":"correct horse battery"}"#;
        call(addr, hyper::Method::POST, "/users", "application/json", body.into()).await?;
        let form = "grant_type=password&username=fuzzer&password=correct+horse+battery";
        let (_, grant) = call(
            addr,
            hyper::Method::POST,
            "/token",
            "application/x-www-form-urlencoded",
            form.into(),
        )
        .await?;
        grant["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no access token for the fuzzer")
    })?;
    let result = run_command(
        Command::new(schemathesis)
            .arg("run")
            .arg(format!("http://{addr}/openapi.json"))
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            .args(["--max-examples", "50", "--seed", "1"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}")),
    );
    server.stop();
    result
}
