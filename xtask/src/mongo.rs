//! The MongoDB-wire server the test run uses.
//!
//! No MongoDB server package exists in Debian and nothing may be fetched
//! from outside the package registries, so `cargo xtask test` runs
//! SecantusDB (a single-node MongoDB-wire server on WiredTiger, from PyPI)
//! in a git-ignored venv, as a separate process: it is GPL-2.0 and is never
//! linked into Tessera. `TESSERA_TEST_MONGO_URL` points the tests at a real
//! `mongod` instead.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{host_port, reachable, run, workspace_root};

/// Pinned: only pre-releases exist.
const SECANTUSDB: &str = "SecantusDB==0.7.0b3";
pub use store_mongo::test_support::TEST_URL_VAR;

/// Where the tests find MongoDB: the server this run started (stopped on
/// drop), or the one the caller named.
#[derive(Debug)]
pub struct TestMongo {
    pub url: String,
    server: Option<(Child, tempfile::TempDir)>,
}

impl TestMongo {
    /// Uses `TESSERA_TEST_MONGO_URL` when set (and reachable), otherwise
    /// installs SecantusDB if missing and starts it on a free port.
    pub fn start() -> Result<Self> {
        if let Ok(url) = std::env::var(TEST_URL_VAR) {
            require_reachable(&url)?;
            println!("mongo: using {TEST_URL_VAR}={url}");
            return Ok(Self { url, server: None });
        }
        let daemon = install()?;
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let log_path = dir.path().join("secantusd.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(&daemon)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(dir.path().join("data"))
            .args(["--log-level", "WARNING"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", daemon.display()))?;
        let addr = (Ipv4Addr::LOCALHOST, port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("the MongoDB test server (SecantusDB) exited with {status}:\n{log}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the MongoDB test server (SecantusDB) did not listen on {addr} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let url = format!("mongodb://127.0.0.1:{port}");
        println!("mongo: started SecantusDB test server at {url}");
        Ok(Self {
            url,
            server: Some((child, dir)),
        })
    }
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        if let Some((mut child, _dir)) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `.venv-mongo/bin/secantusd-py`, installed when missing.
fn install() -> Result<PathBuf> {
    let venv = workspace_root().join(".venv-mongo");
    let daemon = venv.join("bin/secantusd-py");
    if daemon.exists() {
        return Ok(daemon);
    }
    println!("mongo: installing {SECANTUSDB} into {}", venv.display());
    if !venv.join("bin/python").exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin/python")).args(["-m", "pip", "install", "-q", SECANTUSDB]))?;
    if !daemon.exists() {
        bail!("{SECANTUSDB} installed no {}", daemon.display());
    }
    Ok(daemon)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A named server must answer: an unreachable one fails the run.
fn require_reachable(url: &str) -> Result<()> {
    if url.starts_with("mongodb+srv://") {
        return Ok(()); // DNS names the hosts; the tests' own connection will tell.
    }
    let host_port = host_port(url, 27017).with_context(|| format!("cannot parse {url}"))?;
    if !reachable(&host_port) {
        bail!(
            "MongoDB is not reachable at {host_port} ({TEST_URL_VAR}={url}).\n\
             Unset {TEST_URL_VAR} to let `cargo xtask test` start its own test server."
        );
    }
    Ok(())
}
