//! The `tessera` process under test: start, seed, measure memory, stop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A running release-built server.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(binary: &Path, env: &[(&str, String)]) -> Result<Self> {
        let mut command = Command::new(binary);
        command
            .env("TESSERA_SERVER__ADDR", "127.0.0.1:0")
            .env("TESSERA_LOG__FORMAT", "json")
            // Per-request log lines would be a large share of a tiny request's cost.
            .env("TESSERA_LOG__LEVEL", "warn,auth_server::backend=info")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().context("cannot start tessera")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let fields = &record["fields"];
                if fields["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("listening"))
                {
                    if let Some(addr) = fields["addr"].as_str() {
                        let _ = tx.send(addr.to_owned());
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr.parse()?,
            Err(_) => {
                let _ = child.kill();
                bail!("tessera did not start: {:?}", child.try_wait());
            }
        };
        Ok(Self { child, addr })
    }

    fn proc_file(&self, name: &str) -> String {
        format!("/proc/{}/{name}", self.child.id())
    }

    fn status_kib(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(self.proc_file("status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .with_context(|| format!("no {field} in /proc status"))
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> Result<f64> {
        Ok(self.status_kib("VmRSS:")? as f64 / 1024.0)
    }

    /// Peak resident memory since the last [`reset_peak`](Self::reset_peak), in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        Ok(self.status_kib("VmHWM:")? as f64 / 1024.0)
    }

    /// Resets the kernel's peak-RSS mark (Linux: `5 > /proc/PID/clear_refs`).
    pub fn reset_peak(&self) {
        let _ = std::fs::write(self.proc_file("clear_refs"), "5");
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
