//! `cargo xtask ci`: everything CI checks, in order, failing on the first
//! failure; the last line is the test totals.

use anyhow::{Context, Result};

use crate::process::cargo;
use crate::test::TestTotals;

pub fn run() -> Result<()> {
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
    step("deploy files", crate::deploy::check)?;
    let mut totals = TestTotals::default();
    step("tests", || {
        totals = crate::test::run(&[])?;
        Ok(())
    })?;
    step("browser tests (headless Chromium, Authlib)", || {
        crate::browser::run_tests(&[])
    })?;
    step("API fuzzing (schemathesis)", crate::api_fuzz::run)?;
    step("fuzzing (libFuzzer, 5 s per target)", || {
        crate::fuzz::run(5)
    })?;
    println!("xtask ci: all checks passed");
    // The run's closing line: the test totals.
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

fn step(name: &str, run: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> xtask: {name}");
    run().with_context(|| format!("`{name}` failed"))
}
