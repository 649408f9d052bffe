//! The `tessera` binary as a child process, shared by the end-to-end tests
//! (`auth-server/tests/e2e`) and `cargo xtask bench`, so the way a started
//! server is found — its JSON "listening" log line, which carries the
//! address it bound (port 0 picks a free one) — is read in one place.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running `tessera`. Killed when dropped.
#[derive(Debug)]
pub struct TesseraProcess {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

/// `binary serve`-ready command: a free port on loopback, JSON logs (so the
/// address can be read), and no `RUST_LOG` from the caller's shell.
pub fn command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    // The caller's own configuration (a developer's shell, a CI job) must not
    // reach a server under test: every setting it gets is set below or by
    // the caller. Test-harness variables (`TESSERA_TEST_*`) are not
    // configuration and stay.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("TESSERA_") && !key_text.starts_with("TESSERA_TEST_") {
            command.env_remove(&key);
        }
    }
    command
        .env("TESSERA_SERVER__ADDR", "127.0.0.1:0")
        .env("TESSERA_LOG__FORMAT", "json")
        .env_remove("RUST_LOG");
    command
}

/// The address in a "listening" log line, if `line` is one.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &record["fields"];
    fields["message"]
        .as_str()
        .filter(|message| message.starts_with("listening"))?;
    fields["addr"].as_str()?.parse().ok()
}

impl TesseraProcess {
    /// Spawns `command` and waits up to `timeout` for it to listen. Every
    /// line it writes is kept (see [`logs`](Self::logs)); standard error is
    /// also echoed with a `tessera:` prefix, so a failing test shows why.
    pub fn start(mut command: Command, timeout: Duration) -> io::Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, Arc::clone(&logs), false, Some(tx));
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, Arc::clone(&logs), true, None);
        }
        match rx.recv_timeout(timeout) {
            Ok(addr) => Ok(Self { child, addr, logs }),
            Err(_) => {
                let exited = child.try_wait();
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other(format!(
                    "tessera did not start listening within {timeout:?} (exit: {exited:?})"
                )))
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line written so far, standard output and error interleaved.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) -> io::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -TERM exited with {status}")))
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then up to `timeout` for a clean exit; killed otherwise.
    pub fn stop(mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.terminate()?;
        self.wait_exit(timeout)
    }

    /// A `kB` figure of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in KiB.
    pub fn status_kib(&self, field: &str) -> io::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no {field} in /proc status")))
    }

    /// Resets the kernel's peak-RSS mark (`VmHWM`).
    pub fn reset_peak_rss(&self) -> io::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
    }
}

impl Drop for TesseraProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drains `stream` on a thread of its own (the child never blocks on a full
/// pipe), keeping each line and reporting the first listening address.
fn collect(
    stream: impl Read + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    echo: bool,
    listening: Option<mpsc::Sender<SocketAddr>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if echo {
                eprintln!("tessera: {line}");
            }
            if let (Some(tx), Some(addr)) = (&listening, listening_addr(&line)) {
                let _ = tx.send(addr);
            }
            if let Ok(mut logs) = logs.lock() {
                logs.push(line);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::listening_addr;

    #[test]
    fn reads_the_address_from_the_listening_line_only() {
        let line = r#"{"timestamp":"x","level":"INFO","fields":{"message":"listening on http://127.0.0.1:4321","addr":"127.0.0.1:4321","backend":"sqlite"}}"#;
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:4321".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        let other = r#"{"fields":{"message":"applied migration","addr":"127.0.0.1:1"}}"#;
        assert_eq!(listening_addr(other), None);
        assert_eq!(listening_addr("listening on http://127.0.0.1:1"), None);
    }
}
