//! A real SMTP server for the mail tests: `aiosmtpd` (installed by `cargo
//! xtask test`, which names its Python in `TESSERA_TEST_SMTPD_PYTHON`),
//! delivering into a Maildir the tests read. Tests stop and start it to
//! play an outage; the port stays the same.
//!
//! Shared by the in-process tests (`tests/common`) and the end-to-end
//! tests (`tests/e2e`, through `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PYTHON_VAR: &str = "TESSERA_TEST_SMTPD_PYTHON";

/// An aiosmtpd on a fixed port, running or stopped.
pub struct Smtp {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: Option<Child>,
}

/// A delivered message.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

impl Delivered {
    /// The one-time link in the text part.
    pub fn link(&self) -> String {
        self.text
            .split_whitespace()
            .find(|word| word.starts_with("http") && word.contains("token="))
            .unwrap_or_else(|| panic!("no link in {:?}", self.text))
            .to_owned()
    }

    /// The link's path and query (to send to whichever server).
    pub fn link_path(&self) -> String {
        let link = self.link();
        let after_scheme = link
            .split_once("://")
            .map_or(link.as_str(), |(_, rest)| rest);
        after_scheme[after_scheme.find('/').unwrap()..].to_owned()
    }

    /// The token in the link.
    pub fn token(&self) -> String {
        let link = self.link();
        link.split_once("token=").unwrap().1.to_owned()
    }
}

fn python() -> PathBuf {
    std::env::var_os(PYTHON_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{PYTHON_VAR} is not set: run the tests with `cargo xtask test`, which installs \
             aiosmtpd into .venv-smtp, or point {PYTHON_VAR} at a Python that has it"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Smtp {
    /// A server on a fresh port, not running yet (an outage from the start).
    pub fn stopped() -> Self {
        Self {
            port: free_port(),
            maildir: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    /// A running server on a fresh port.
    pub fn start() -> Self {
        let mut smtp = Self::stopped();
        smtp.run();
        smtp
    }

    /// Starts the server on its port; returns once it accepts connections.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // A folder that does not exist yet: Maildir creates its parts then.
            .arg(self.maildir.path().join("box"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start aiosmtpd: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (connections are refused until [`run`](Self::run)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Settings that send mail here (`TESSERA_MAIL__...`), fast retries.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TESSERA_MAIL__TRANSPORT", "smtp".into()),
            (
                "TESSERA_MAIL__FROM",
                "Tessera Test <accounts@tessera.test>".into(),
            ),
            ("TESSERA_MAIL__SMTP__HOST", "127.0.0.1".into()),
            ("TESSERA_MAIL__SMTP__PORT", self.port.to_string()),
            ("TESSERA_MAIL__SMTP__SECURITY", "none".into()),
            ("TESSERA_MAIL__SMTP__TIMEOUT", "3s".into()),
            ("TESSERA_MAIL__POLL_INTERVAL", "200ms".into()),
            ("TESSERA_MAIL__RETRY_MIN", "200ms".into()),
            ("TESSERA_MAIL__RETRY_MAX", "1s".into()),
        ]
    }

    /// Every message delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Delivered> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.path().join("box").join(sub)).ok())
            .flatten()
            .flatten()
            .map(|entry| {
                let modified = entry.metadata().and_then(|m| m.modified()).unwrap();
                (modified, entry.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| parse(&std::fs::read(&path).unwrap()))
            .collect()
    }

    /// The messages to `to`.
    pub fn messages_to(&self, to: &str) -> Vec<Delivered> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.eq_ignore_ascii_case(to))
            .collect()
    }

    /// Waits until at least `count` messages went to `to`; all of them.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Delivered> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.messages_to(to);
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{count} message(s) to {to} expected; delivered: {:?}",
                self.messages()
                    .iter()
                    .map(|m| (&m.to, &m.subject))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(raw: &[u8]) -> Delivered {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a MIME message");
    let address = |list: Option<&mail_parser::Address>| {
        list.and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned()
    };
    Delivered {
        to: address(message.to()),
        from: address(message.from()),
        subject: message.subject().unwrap_or_default().to_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
    }
}
