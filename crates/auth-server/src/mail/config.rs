//! `[mail]` and `[accounts]`: how messages are sent and what they do.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use auth_core::{DeliveryPolicy, RateLimit, Secret};
use serde::{Deserialize, Serialize};

/// `[accounts]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// Refuse sign-in (pages and the password grant) until the address is
    /// verified by the link sent at registration.
    pub require_verified_email: bool,
}

/// `mail.transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// A mail server (production).
    Smtp,
    /// One `.eml` file per message in `mail.file_dir` (development).
    File,
    /// The message, links included, in the log (development only).
    Log,
}

/// `mail.smtp.security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, required (port 587).
    Starttls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on localhost or a test server; port 25).
    None,
}

/// `[mail.smtp]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Unset: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub port: Option<u16>,
    pub security: SmtpSecurity,
    /// PLAIN or LOGIN authentication, whichever the server offers.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Connections kept open to the server.
    pub pool_size: u32,
    /// How long one SMTP conversation may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: None,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            pool_size: 4,
            timeout: Duration::from_secs(10),
        }
    }
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || std::net::IpAddr::from_str(&self.host).is_ok_and(|ip| ip.is_loopback())
    }
}

/// `[mail]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    pub transport: TransportKind,
    /// The sender: `Name <address>` or an address.
    pub from: String,
    pub smtp: SmtpConfig,
    /// `file` transport: where messages are written. Unset: `data_dir/mail`.
    pub file_dir: Option<PathBuf>,
    /// How long a link in a message works.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
    /// A message not delivered this long after it was written is given up.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// The first retry's delay; each further one doubles, up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often each replica looks for messages to send.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Verification messages (and email changes) one account may ask for.
    pub resend_limit: RateLimit,
    /// `/password/forgot` requests per address, known or not.
    pub forgot_per_address: RateLimit,
    /// `/password/forgot` requests per client address.
    pub forgot_per_client: RateLimit,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: TransportKind::Log,
            from: "Tessera <no-reply@localhost>".into(),
            smtp: SmtpConfig::default(),
            file_dir: None,
            link_ttl: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
            resend_limit: RateLimit::new(3, Duration::from_secs(15 * 60)),
            forgot_per_address: RateLimit::new(3, Duration::from_secs(3600)),
            forgot_per_client: RateLimit::new(20, Duration::from_secs(3600)),
        }
    }
}

impl MailConfig {
    pub fn delivery_policy(&self) -> DeliveryPolicy {
        // A round sends its batch one message after another, each bounded
        // by the SMTP timeout: the lease outlasts the whole round, so a
        // slow sender is never overtaken by another replica (which would
        // send its last messages twice).
        let batch = 5;
        DeliveryPolicy {
            retry_min: self.retry_min,
            retry_max: self.retry_max,
            give_up_after: self.give_up_after,
            lease: self
                .smtp
                .timeout
                .saturating_mul(batch + 1)
                .max(Duration::from_secs(30)),
            batch,
        }
    }

    /// Rules for every profile.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if lettre::message::Mailbox::from_str(&self.from).is_err() {
            problems.push(format!(
                "mail.from = {:?} is not an address (`Name <address>` or `address`)",
                self.from
            ));
        }
        if self.link_ttl < Duration::from_secs(60) || self.link_ttl > Duration::from_secs(7 * 86400)
        {
            problems.push("mail.link_ttl must be between 1m and 7d".into());
        }
        if self.retry_min.is_zero() || self.retry_min > self.retry_max {
            problems.push("mail.retry_min must be above 0s and at most mail.retry_max".into());
        }
        if self.poll_interval < Duration::from_millis(100) {
            problems.push("mail.poll_interval must be at least 100ms".into());
        }
        if self.smtp.pool_size == 0 {
            problems.push("mail.smtp.pool_size must be at least 1".into());
        }
        for (key, limit) in [
            ("mail.resend_limit", &self.resend_limit),
            ("mail.forgot_per_address", &self.forgot_per_address),
            ("mail.forgot_per_client", &self.forgot_per_client),
        ] {
            // The throttle purge forgets records older than an hour and a
            // quarter: a longer window would be cut short.
            if limit.max == 0 || limit.window.is_zero() || limit.window > Duration::from_secs(3600)
            {
                problems.push(format!(
                    "{key} needs max >= 1 and a window between 1s and 1h"
                ));
            }
        }
        if self.smtp.username.is_some() != self.smtp.password.is_some() {
            problems.push("mail.smtp.username and mail.smtp.password go together".into());
        }
        problems
    }

    /// What `production` refuses.
    pub fn production_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.transport == TransportKind::Log {
            problems.push(
                "mail.transport = \"log\" writes reset links into the log; not allowed in production \
                 (use smtp, TESSERA_MAIL__TRANSPORT=smtp)"
                    .into(),
            );
        }
        if self.transport == TransportKind::Smtp
            && self.smtp.security == SmtpSecurity::None
            && self.smtp.username.is_some()
            && !self.smtp.is_loopback()
        {
            problems.push(
                "mail.smtp.security = \"none\" would send the SMTP password in the clear to a \
                 remote server; use starttls or tls in production"
                    .into(),
            );
        }
        problems
    }
}
