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
    reclaim_debug_build_when_asked()?;
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
    print_free_disk();
    run().with_context(|| format!("`{name}` failed"))
}

/// The fuzz build (instrumented, its own target directory) comes last and
/// needs nothing from `target/debug`; on a CI machine with a small disk the
/// debug build is deleted first (`XTASK_CI_RECLAIM_DISK=1`, set by
/// `.ci/run`). A developer's local run keeps its build cache.
fn reclaim_debug_build_when_asked() -> Result<()> {
    if std::env::var_os("XTASK_CI_RECLAIM_DISK").is_none_or(|v| v != "1") {
        return Ok(());
    }
    let debug = crate::process::workspace_root().join("target/debug");
    if debug.exists() {
        println!("==> xtask: removing {} to make room", debug.display());
        std::fs::remove_dir_all(&debug)
            .with_context(|| format!("cannot remove {}", debug.display()))?;
    }
    Ok(())
}

/// Free space where the build writes: a full disk is the one CI failure
/// that the log otherwise explains only after the fact.
fn print_free_disk() {
    let target = crate::process::workspace_root().join("target");
    let path = if target.exists() {
        target
    } else {
        crate::process::workspace_root()
    };
    if let Ok(out) = std::process::Command::new("df")
        .arg("-h")
        .arg(&path)
        .output()
    {
        if let Some(line) = String::from_utf8_lossy(&out.stdout).lines().nth(1) {
            println!("    disk: {line}");
        }
    }
}
