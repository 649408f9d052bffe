//! Project automation, in the style of rust-analyzer's xtask: plain Rust,
//! no extra tools to install. `cargo xtask --help` lists the commands.

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

mod bench;
mod mongo;
use clap::{Parser, Subcommand};

const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The release build: the bench uses it and `deploy/Dockerfile` must run
/// exactly this (checked by `cargo xtask ci`).
pub const RELEASE_BUILD: &[&str] = &[
    "build",
    "--release",
    "--locked",
    "-p",
    "auth-server",
    "--all-features",
];

/// The schema checker for the Kubernetes manifests, pinned.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
/// The schema-based API fuzzer, pinned.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

#[derive(Parser)]
#[command(name = "xtask", about = "Tessera project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Everything CI checks: formatting, clippy (-D warnings), every test on every backend.
    Ci,
    /// Every test on every backend (needs PostgreSQL; starts a MongoDB-wire
    /// test server itself unless TESSERA_TEST_MONGO_URL names one; see README).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Run the server with the embedded defaults (SQLite in ./data).
    Dev,
    /// Apply pending migrations to a database.
    Migrate {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Check deploy/: Dockerfile build command, Kubernetes schemas, compose wiring.
    CheckDeploy,
    /// Fuzz the live API against its own OpenAPI document (schemathesis).
    ApiFuzz,
    /// Run each libFuzzer target in fuzz/ for N seconds.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Load-test the release server on each backend, side by side.
    Bench {
        /// memory, sqlite, postgres, mongo or all.
        #[arg(long, default_value = "all")]
        backend: String,
        /// Per scenario: `10s`, `10` (seconds) or `1m`.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Users seeded (each holds a token for the /users/me scenario).
        #[arg(long, default_value_t = 64)]
        users: usize,
        /// An earlier report (target/bench/*.json) to print ratios against.
        #[arg(long)]
        compare: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Ci => ci(),
        Task::Test { args } => test(&args).map(|_| ()),
        Task::Dev => cargo(&["run", "--release", "-p", "auth-server"], &[]),
        Task::Migrate { backend, url } => {
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
        Task::Bench {
            backend,
            duration,
            connections,
            users,
            compare,
        } => {
            let backends = if backend == "all" {
                vec![
                    "memory".into(),
                    "sqlite".into(),
                    "postgres".into(),
                    "mongo".into(),
                ]
            } else {
                vec![backend]
            };
            if backends.iter().any(|b| b == "postgres") {
                require_postgres()?;
            }
            bench::run(
                &workspace_root(),
                &bench::BenchArgs {
                    backends,
                    duration: duration.max(Duration::from_secs(1)),
                    connections: connections.max(1),
                    users: users.max(1),
                    compare,
                },
            )
        }
        Task::CheckDeploy => check_deploy(),
        Task::ApiFuzz => api_fuzz(),
        Task::Fuzz { seconds } => fuzz(seconds),
        Task::Openapi => cargo(
            &[
                "run",
                "-q",
                "-p",
                "auth-server",
                "--all-features",
                "--example",
                "openapi",
            ],
            &[],
        ),
    }
}

fn ci() -> Result<()> {
    step("format", || cargo(&["fmt", "--all", "--", "--check"], &[]))?;
    step("clippy", || {
        cargo(
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    })?;
    step("deploy files", check_deploy)?;
    let mut totals = TestTotals::default();
    step("tests", || {
        totals = test(&[])?;
        Ok(())
    })?;
    step("API fuzzing (schemathesis)", api_fuzz)?;
    step("fuzzing (libFuzzer, 5 s per target)", || fuzz(5))?;
    println!("xtask ci: all checks passed");
    // The run's closing line: the test totals.
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

fn test(extra: &[String]) -> Result<TestTotals> {
    require_postgres()?;
    // Stopped when this returns, whatever the outcome.
    let mongo = mongo::TestMongo::start()?;
    let mut args: Vec<&str> = vec!["test", "--workspace", "--all-features", "--no-fail-fast"];
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str));
    }
    let mut child = cargo_command()
        .args(&args)
        .env(mongo::TEST_URL_VAR, &mongo.url)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let mut totals = TestTotals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            totals.add(&line);
        }
    }
    let status = child.wait()?;
    // One closing line for the whole run (cargo prints one per test binary).
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    check(status, &args)?;
    if totals.passed == 0 {
        bail!("no test ran");
    }
    Ok(totals)
}

/// Sums cargo's per-binary `test result:` lines.
#[derive(Debug, Default, PartialEq, Eq)]
struct TestTotals {
    passed: u64,
    failed: u64,
}

impl TestTotals {
    fn add(&mut self, line: &str) {
        let Some(summary) = line.strip_prefix("test result: ") else {
            return;
        };
        let count = |label: &str| {
            summary
                .split([';', '.'])
                .filter_map(|part| part.trim().strip_suffix(label))
                .find_map(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.passed += count(" passed");
        self.failed += count(" failed");
    }
}

/// The PostgreSQL tests are part of every run: an unreachable server fails
/// here, with instructions, instead of being skipped.
fn require_postgres() -> Result<()> {
    let url = std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned());
    let host_port = host_port(&url, 5432).with_context(|| format!("cannot parse {url}"))?;
    if !reachable(&host_port) {
        bail!(
            "PostgreSQL is not reachable at {host_port} (TESSERA_TEST_POSTGRES_URL={url}).\n\
             The test run needs it. On Debian: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             or point TESSERA_TEST_POSTGRES_URL at a server whose user may CREATE DATABASE."
        );
    }
    Ok(())
}

/// Whether something accepts TCP connections at `host:port` (3 s at most).
fn reachable(host_port: &str) -> bool {
    host_port
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok())
}

/// Checks what can be checked here of `deploy/` (no container engine runs
/// on CI machines): the Dockerfile builds with [`RELEASE_BUILD`], the
/// Kubernetes manifests pass a strict schema check, the compose file parses
/// and wires the services as documented.
fn check_deploy() -> Result<()> {
    let root = workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile"))?;
    let expected = format!("RUN cargo {}", RELEASE_BUILD.join(" "));
    if !dockerfile.lines().any(|line| line.trim() == expected) {
        bail!("deploy/Dockerfile must build with `{expected}` (the command CI and the bench use)");
    }
    let validate = python_tool("kubernetes-validate", KUBERNETES_VALIDATE)?;
    let python = root.join(".venv-tools/bin/python");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(root.join("deploy/k8s"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    manifests.sort();
    run(Command::new(validate)
        .args(["--strict", "--quiet"])
        .args(&manifests))?;
    run(Command::new(&python)
        .arg("-c")
        .arg(DEPLOY_CHECKS)
        .arg(root.join("deploy")))?;
    println!(
        "deploy files: Dockerfile, {} manifests and compose.yaml check out",
        manifests.len()
    );
    Ok(())
}

/// The libFuzzer targets in `fuzz/fuzz_targets/`.
const FUZZ_TARGETS: &[&str] = &["token_verify", "request_bodies", "validators"];

/// Seeds, so the fuzzers start from inputs that reach deep code.
const FUZZ_SEEDS: &[(&str, &str)] = &[
    (
        "token_verify",
        "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiIsImtpZCI6ImhzMjU2LXgifQ.eyJzdWIiOiJ4In0.c2ln",
    ),
    ("token_verify", "eyJhbGciOiJub25lIn0.e30."),
    (
        "request_bodies",
        "grant_type=password&username=a%40b.org&password=p+w%20d",
    ),
    (
        "request_bodies",
        r#"{"username":"alice","email":"a@x.org","password":"correct horse"}"#,
    ),
    ("validators", "Alice.B-c_9"),
    ("validators", "Jürgen@Bücher.de"),
];

/// Coverage-guided fuzzing with libFuzzer on the stable toolchain: the
/// sanitizer-coverage instrumentation cargo-fuzz adds, without the
/// nightly-only address sanitizer (the code has no `unsafe`, so panics are
/// what the targets hunt). Fails on any crash.
fn fuzz(seconds: u64) -> Result<()> {
    let root = workspace_root();
    let rustc = Command::new("rustc").arg("-vV").output()?;
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("cannot tell the host triple")?;
    let flags = [
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "-Cdebug-assertions",
        "-Coverflow-checks",
    ]
    .join(" ");
    let target_dir = root.join("target/fuzz");
    run(cargo_command()
        .args(["build", "--release", "--manifest-path"])
        .arg(root.join("fuzz/Cargo.toml"))
        .args(["--target", &host, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", flags))?;
    for target in FUZZ_TARGETS {
        let corpus = target_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        for (i, (_, seed)) in FUZZ_SEEDS.iter().filter(|(t, _)| t == target).enumerate() {
            std::fs::write(corpus.join(format!("seed-{i}")), seed)?;
        }
        println!("fuzzing {target} for {seconds}s");
        run(
            Command::new(target_dir.join(&host).join("release").join(target))
                .arg(format!("-max_total_time={seconds}"))
                .arg("-rss_limit_mb=2048")
                .arg(format!("-artifact_prefix={}/", target_dir.display()))
                .arg(&corpus),
        )?;
    }
    Ok(())
}

/// Python tools CI uses, in a git-ignored venv, installed when missing.
fn python_tool(binary: &str, requirement: &str) -> Result<PathBuf> {
    let venv = workspace_root().join(".venv-tools");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let tool = venv.join("bin").join(binary);
    if !tool.exists() {
        run(Command::new(&python).args(["-m", "pip", "install", "-q", requirement]))?;
    }
    Ok(tool)
}

/// Starts the server (memory backend, debug build) and runs schemathesis on
/// its `/openapi.json` with a valid bearer token: any 5xx, or any response
/// that does not match the documented status codes, content types, headers
/// or schemas, fails the run.
fn api_fuzz() -> Result<()> {
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
    let result = run(Command::new(schemathesis)
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
        .arg(format!("Authorization: Bearer {token}")));
    server.stop();
    result
}

/// Kinds and wiring the deploy README promises (PyYAML comes with kubernetes-validate).
const DEPLOY_CHECKS: &str = r#"
import pathlib, sys, yaml
deploy = pathlib.Path(sys.argv[1])
kinds = {}
for path in sorted((deploy / "k8s").glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        kinds[doc["kind"]] = doc
need = {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"}
assert need <= set(kinds), f"missing kinds: {need - set(kinds)}"
deployment = kinds["Deployment"]["spec"]
assert deployment["replicas"] == 3, "three replicas"
container = deployment["template"]["spec"]["containers"][0]
assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert "requests" in container["resources"]
assert kinds["Job"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
compose = yaml.safe_load((deploy / "compose.yaml").read_text())
services = compose["services"]
for profile, (db, migrate, server) in {
    "postgres": ("postgres", "migrate", "tessera"),
    "mongo": ("mongo", "migrate-mongo", "tessera-mongo"),
}.items():
    for name in (db, migrate, server):
        assert services[name]["profiles"] == [profile], (name, services[name].get("profiles"))
    assert services[migrate]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services[migrate]["command"] == ["migrate"]
    assert services[migrate]["depends_on"][db]["condition"] == "service_healthy"
    assert services[server]["depends_on"][migrate]["condition"] == "service_completed_successfully"
    for name in (migrate, server):
        env = services[name]["environment"]
        assert env["TESSERA_STORAGE__BACKEND"] == profile, (name, env)
        assert env["TESSERA_STORAGE__AUTO_MIGRATE"] == "false"
        assert "TESSERA_TOKENS__SECRET" in env
"#;

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} exited with {status}");
    }
    Ok(())
}

/// `10s`, `10` or `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.strip_suffix('m') {
        Some(minutes) => (minutes, 60),
        None => (text.strip_suffix('s').unwrap_or(text), 1),
    };
    number
        .trim()
        .parse::<u64>()
        .map(|n| Duration::from_secs(n * unit))
        .map_err(|_| format!("not a duration: {text:?} (try 10s or 1m)"))
}

/// `host:port` of the first host of a `scheme://user:pass@host:port,.../db?query`
/// URL (PostgreSQL and MongoDB both write them so), with `default_port`
/// when none is given.
fn host_port(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = hosts.split(',').next()?;
    if host.is_empty() {
        return None;
    }
    Some(if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    })
}

fn step(name: &str, run: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> xtask: {name}");
    run().with_context(|| format!("`{name}` failed"))
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A `cargo` command for the workspace, without the variables `cargo run`
/// set for this xtask process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...):
/// build scripts such as ring's rerun when they change, so passing them on
/// made every nested build differ from a plain `cargo build` and recompile
/// half the dependency tree each time.
pub fn cargo_command() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(name.as_ref());
        }
    }
    command.current_dir(workspace_root());
    command
}

fn cargo(args: &[&str], env: &[(&str, String)]) -> Result<()> {
    let mut command = cargo_command();
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    check(command.status().context("cannot run cargo")?, args)
}

fn check(status: ExitStatus, args: &[&str]) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("cargo {} exited with {status}", args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn finds_host_and_port() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432/postgres", 5432).as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(
            host_port("postgres://u:p@db.internal/x?sslmode=require", 5432).as_deref(),
            Some("db.internal:5432")
        );
        assert_eq!(host_port("postgres:///x", 5432), None);
        assert_eq!(
            host_port("mongodb://u:p@a.internal,b.internal:27018/x", 27017).as_deref(),
            Some("a.internal:27017")
        );
    }

    #[test]
    fn parses_durations() {
        use std::time::Duration;
        assert_eq!(super::parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(super::parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(super::parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(super::parse_duration("fast").is_err());
    }

    #[test]
    fn sums_cargo_test_summaries() {
        let mut totals = super::TestTotals::default();
        totals.add("test result: ok. 14 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.03s");
        totals.add("test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s");
        totals.add("running 3 tests");
        assert_eq!(
            totals,
            super::TestTotals {
                passed: 19,
                failed: 2
            }
        );
    }
}
