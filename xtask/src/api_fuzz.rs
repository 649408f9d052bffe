//! `cargo xtask api-fuzz`: schemathesis against the live server's own
//! OpenAPI document.

use std::process::Command;

use anyhow::{Context, Result};

use crate::bench;
use crate::process::{cargo, python_tool, run as run_command, workspace_root};

/// The schema-based API fuzzer, pinned.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The administration client the fuzzer acts as (configured, so the
/// fuzzer cannot delete or change it through the API it is fuzzing).
const ADMIN_CLIENT: &str = "fuzz-admin";
const ADMIN_SECRET: &str = "fuzz-admin-secret-fuzz-admin-secret-0123456789";

/// Starts the server (memory backend, debug build) and runs schemathesis on
/// its `/openapi.json`: the user-facing routes with a user's bearer token,
/// `/admin/v1` with an administration client's. Any 5xx, or any response
/// that does not match the documented status codes, content types, headers
/// or schemas, fails the run.
pub fn run() -> Result<()> {
    let schemathesis = python_tool("schemathesis", SCHEMATHESIS)?;
    cargo(&["build", "-q", "-p", "auth-server", "--all-features"], &[])?;
    let data = tempfile::tempdir()?;
    let config = data.path().join("fuzz.toml");
    std::fs::write(
        &config,
        format!(
            "[[clients]]\nid = \"{ADMIN_CLIENT}\"\nsecret = \"{ADMIN_SECRET}\"\n\
             grant_types = [\"client_credentials\"]\nscopes = [\"admin\"]\n"
        ),
    )?;
    let server = bench::server::Server::start(
        &workspace_root().join("target/debug/tessera"),
        &[
            ("TESSERA_CONFIG", config.display().to_string()),
            ("TESSERA_STORAGE__BACKEND", "memory".into()),
            ("TESSERA_DATA_DIR", data.path().display().to_string()),
            ("TESSERA_PASSWORDS__MEMORY_KIB", "1024".into()),
            ("TESSERA_PASSWORDS__ITERATIONS", "1".into()),
            ("TESSERA_RATE_LIMIT__PER_MINUTE", "0".into()),
            ("TESSERA_THROTTLE__MAX_FAILURES", "1000000".into()),
        ],
    )?;
    let addr = server.addr;
    let tokens = tokio::runtime::Runtime::new()?.block_on(async {
        use bench::load::call;
        let body = r#"{"username":"fuzzer","email":"fuzzer@example.org","password":"correct horse battery"}"#;
        call(addr, hyper::Method::POST, "/users", "application/json", body.into()).await?;
        let token_of = |grant: serde_json::Value| {
            grant["access_token"]
                .as_str()
                .map(str::to_owned)
                .context("no access token for the fuzzer")
        };
        let form = "grant_type=password&username=fuzzer&password=correct+horse+battery";
        let (_, user) = call(
            addr,
            hyper::Method::POST,
            "/token",
            "application/x-www-form-urlencoded",
            form.into(),
        )
        .await?;
        let form = format!(
            "grant_type=client_credentials&client_id={ADMIN_CLIENT}&client_secret={ADMIN_SECRET}"
        );
        let (_, admin) = call(
            addr,
            hyper::Method::POST,
            "/token",
            "application/x-www-form-urlencoded",
            form,
        )
        .await?;
        anyhow::Ok((token_of(user)?, token_of(admin)?))
    });
    let result = tokens.and_then(|(user, admin)| {
        let fuzz = |token: &str, path_filter: [&str; 2]| {
            run_command(
                Command::new(&schemathesis)
                    .arg("run")
                    .arg(format!("http://{addr}/openapi.json"))
                    .args([
                        "--checks",
                        "all",
                        "--exclude-checks",
                        "positive_data_acceptance",
                    ])
                    .args(["--max-examples", "50", "--seed", "1"])
                    .args(path_filter)
                    .arg("-H")
                    .arg(format!("Authorization: Bearer {token}")),
            )
        };
        fuzz(&user, ["--exclude-path-regex", "^/admin/"])
            .context("schemathesis on the user-facing API")?;
        fuzz(&admin, ["--include-path-regex", "^/admin/"]).context("schemathesis on /admin/v1")
    });
    server.stop();
    result
}
