//! `cargo xtask test`: every test on every backend. PostgreSQL must be
//! reachable and MongoDB is started if not named: a backend that cannot run
//! fails the run, it is never skipped.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use store_sql::test_support::{DEFAULT_ADMIN_URL, TEST_URL_VAR};

use crate::process::{cargo_command, check, host_port, reachable};
use crate::{mongo, smtp};

pub fn run(extra: &[String]) -> Result<TestTotals> {
    require_postgres()?;
    // Stopped when this returns, whatever the outcome.
    let mongo = mongo::TestMongo::start()?;
    let smtpd = smtp::python()?;
    let mut args: Vec<&str> = vec!["test", "--workspace", "--all-features", "--no-fail-fast"];
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str));
    }
    let mut child = cargo_command()
        .args(&args)
        .env(mongo::TEST_URL_VAR, &mongo.url)
        .env(smtp::TEST_PYTHON_VAR, &smtpd)
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
pub struct TestTotals {
    pub passed: u64,
    pub failed: u64,
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
pub fn require_postgres() -> Result<()> {
    let url = std::env::var(TEST_URL_VAR).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    let host_port = host_port(&url, 5432).with_context(|| format!("cannot parse {url}"))?;
    if !reachable(&host_port) {
        bail!(
            "PostgreSQL is not reachable at {host_port} ({TEST_URL_VAR}={url}).\n\
             The test run needs it. On Debian: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             or point {TEST_URL_VAR} at a server whose user may CREATE DATABASE."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
