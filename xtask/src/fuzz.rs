//! `cargo xtask fuzz`: the libFuzzer targets in `fuzz/`, each for N seconds.

use std::process::Command;

use anyhow::{Context, Result};

use crate::process::{cargo_command, workspace_root};

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
pub fn run(seconds: u64) -> Result<()> {
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
    crate::process::run(
        cargo_command()
            .args(["build", "--release", "--manifest-path"])
            .arg(root.join("fuzz/Cargo.toml"))
            .args(["--target", &host, "--target-dir"])
            .arg(&target_dir)
            .env("RUSTFLAGS", flags),
    )?;
    for target in FUZZ_TARGETS {
        let corpus = target_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        for (i, (_, seed)) in FUZZ_SEEDS.iter().filter(|(t, _)| t == target).enumerate() {
            std::fs::write(corpus.join(format!("seed-{i}")), seed)?;
        }
        println!("fuzzing {target} for {seconds}s");
        crate::process::run(
            Command::new(target_dir.join(&host).join("release").join(target))
                .arg(format!("-max_total_time={seconds}"))
                .arg("-rss_limit_mb=2048")
                .arg(format!("-artifact_prefix={}/", target_dir.display()))
                .arg(&corpus),
        )?;
    }
    Ok(())
}
