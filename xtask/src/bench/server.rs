//! The `tessera` process under test, with the memory figures the bench
//! reports. Starting it and finding its address is `tessera-process`'s job
//! (shared with the end-to-end tests).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use tessera_process::TesseraProcess;

/// A running release-built server.
#[derive(Debug)]
pub struct Server {
    process: TesseraProcess,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(binary: &Path, env: &[(&str, String)]) -> Result<Self> {
        let mut command = tessera_process::command(binary);
        // Per-request log lines would be a large share of a tiny request's cost.
        command.env("TESSERA_LOG__LEVEL", "warn,auth_server::backend=info");
        for (key, value) in env {
            command.env(key, value);
        }
        let process = TesseraProcess::start(command, Duration::from_secs(60))?;
        let addr = process.addr();
        Ok(Self { process, addr })
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> Result<f64> {
        Ok(self.process.status_kib("VmRSS:")? as f64 / 1024.0)
    }

    /// Peak resident memory since the last [`reset_peak`](Self::reset_peak), in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        Ok(self.process.status_kib("VmHWM:")? as f64 / 1024.0)
    }

    pub fn reset_peak(&self) {
        let _ = self.process.reset_peak_rss();
    }

    /// SIGTERM, ten seconds to finish, then killed (on drop).
    pub fn stop(self) {
        let _ = self.process.stop(Duration::from_secs(10));
    }
}
