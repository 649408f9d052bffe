//! Running commands: cargo (without the variables `cargo run` leaks),
//! Python tools in a venv, and small parsing helpers the tasks share.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{bail, Context, Result};

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

/// Whether something accepts TCP connections at `host:port` (3 s at most).
pub fn reachable(host_port: &str) -> bool {
    host_port
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok())
}

/// Python tools CI uses, in a git-ignored venv, installed when missing.
pub fn python_tool(binary: &str, requirement: &str) -> Result<PathBuf> {
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

/// A git-ignored venv named `name` holding exactly `requirements`
/// (reinstalled when the list changes); returns its Python.
pub fn python_env(name: &str, requirements: &[&str]) -> Result<PathBuf> {
    let venv = workspace_root().join(name);
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let stamp = venv.join("requirements.installed");
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q"])
            .args(requirements))?;
        std::fs::write(&stamp, &wanted)?;
    }
    Ok(python)
}

/// Runs `command`, failing when it fails. Errors name the program only:
/// arguments can carry secrets (schemathesis gets a bearer token as `-H`).
pub fn run(command: &mut Command) -> Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let status = command
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} exited with {status}");
    }
    Ok(())
}

/// `10s`, `10` or `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
pub fn host_port(url: &str, default_port: u16) -> Option<String> {
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

pub fn workspace_root() -> PathBuf {
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

pub fn cargo(args: &[&str], env: &[(&str, String)]) -> Result<()> {
    let mut command = cargo_command();
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    check(command.status().context("cannot run cargo")?, args)
}

pub fn check(status: ExitStatus, args: &[&str]) -> Result<()> {
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
}
