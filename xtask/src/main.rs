//! Project automation, in the style of rust-analyzer's xtask: plain Rust,
//! a short dispatcher here and one module per task. `cargo xtask --help`
//! lists the commands.

mod api_fuzz;
mod bench;
mod browser;
mod ci;
mod deploy;
mod fuzz;
mod migrate;
mod mongo;
mod process;
mod smtp;
mod test;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// The hosted pages in headless Chromium (Debian's), with Authlib as the client.
    Browser {
        /// Extra arguments for pytest (e.g. `-k consent`).
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
        /// memory, sqlite, postgres, mongo, several of them separated by
        /// commas, or all.
        #[arg(long, default_value = "all")]
        backend: String,
        /// Per scenario: `10s`, `10` (seconds) or `1m`.
        #[arg(long, default_value = "10s", value_parser = process::parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Users seeded (each holds a token for the /users/me scenario).
        #[arg(long, default_value_t = 64)]
        users: usize,
        /// Accounts in the store for the admin scenario (SQLite, PostgreSQL).
        #[arg(long, default_value_t = 100_000)]
        admin_accounts: usize,
        /// An earlier report (target/bench/*.json) to print ratios against.
        #[arg(long)]
        compare: Option<PathBuf>,
        /// Another `tessera` binary (a release build of an earlier commit)
        /// benched in the same run, backend by backend, right before this
        /// tree's: ratios against it are printed at the end.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Only these scenarios, separated by commas (`users_me,admin_users`);
        /// the ratios that need the others are left out.
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(bench::scenarios()))]
        only: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Ci => ci::run(),
        Task::Test { args } => test::run(&args).map(|_| ()),
        Task::Browser { args } => browser::run_tests(&args),
        Task::Dev => process::cargo(&["run", "--release", "-p", "auth-server"], &[]),
        Task::Migrate { backend, url } => migrate::run(backend, url),
        Task::Bench {
            backend,
            duration,
            connections,
            users,
            admin_accounts,
            compare,
            baseline,
            only,
        } => bench::run(&bench::BenchArgs {
            backends: bench::backends(&backend),
            duration: duration.max(Duration::from_secs(1)),
            connections: connections.max(1),
            users: users.max(1),
            admin_accounts: admin_accounts.max(1),
            compare,
            baseline,
            only,
        }),
        Task::CheckDeploy => deploy::check(),
        Task::ApiFuzz => api_fuzz::run(),
        Task::Fuzz { seconds } => fuzz::run(seconds),
        Task::Openapi => process::cargo(
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
