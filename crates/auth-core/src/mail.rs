//! Mail: the messages Tessera sends, the outbox they wait in, and the
//! ports through which they are written and sent.
//!
//! A message is never sent from a request. The use case that causes it
//! (registration, a reset request, a password change) renders it and
//! hands it to the store *in the same store operation* as the change it
//! reports, so an SMTP outage delays mail and loses none. A sender loop on
//! every replica ([`deliver_due`]) claims due messages with a lease (one
//! sender per message at a time), sends them through a [`MailTransport`],
//! and records the outcome: sent, retried later with exponential backoff,
//! or given up after [`DeliveryPolicy::give_up_after`].
//!
//! Rendering belongs to the server (templates, locales): the domain says
//! *what* to send through [`MailKind`] and a [`MailComposer`] turns it into
//! a subject, a text part and an HTML part.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::service::chrono_duration;
use crate::store::{MailStore, StoreError};

/// A rendered message, ready for the outbox.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub id: Uuid,
    /// One address.
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for OutgoingMail {
    // The parts carry one-time links: they stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A message a sender has claimed from the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub mail: OutgoingMail,
    /// Delivery attempts so far, this one included.
    pub attempts: u32,
    /// The claim this sender holds; only it may record the outcome.
    pub claim: Uuid,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// The server accepted it; the message's parts are erased.
    Sent,
    /// Try again at `at`.
    Retry { at: DateTime<Utc>, error: String },
    /// No more attempts; the message's parts are erased.
    GaveUp { error: String },
}

/// Why a transport could not send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth retrying: connection refused, timeout, a 4xx reply.
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Retrying will not help: a 5xx reply (unknown mailbox, refused sender).
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

/// Sends one message. Adapters: SMTP, a folder of `.eml` files, the log.
pub trait MailTransport: Send + Sync + 'static {
    /// Sends `mail` from the configured sender; the server's final reply
    /// (`250 2.0.0 Ok: queued`) on success.
    fn send(&self, mail: &OutgoingMail) -> impl Future<Output = Result<String, MailError>> + Send;
}

/// How the outbox is worked (`mail.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// The first retry's delay; each further one doubles it.
    pub retry_min: Duration,
    /// The longest delay between two attempts.
    pub retry_max: Duration,
    /// A message not delivered this long after it was written is given up
    /// (and counted): its links have expired by then anyway.
    pub give_up_after: Duration,
    /// How long a claim holds a message; longer than an SMTP conversation,
    /// so a slow sender is never overtaken by another replica.
    pub lease: Duration,
    /// Messages claimed per round.
    pub batch: u32,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
            batch: 5,
        }
    }
}

impl DeliveryPolicy {
    /// When to try again after `attempts` failed attempts, or `None` when
    /// the message is now too old to keep trying.
    pub fn next_attempt(
        &self,
        attempts: u32,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let doublings = attempts.saturating_sub(1).min(20);
        let delay = self
            .retry_min
            .saturating_mul(1 << doublings)
            .min(self.retry_max);
        let at = now + chrono_duration(delay);
        (at < created_at + chrono_duration(self.give_up_after)).then_some(at)
    }
}

/// What one round of [`deliver_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u32,
    pub retried: u32,
    pub gave_up: u32,
    /// Outcomes that could not be recorded because the claim had lapsed
    /// (another sender has the message now).
    pub lost_claims: u32,
}

impl DeliveryReport {
    pub fn claimed(&self) -> u32 {
        self.sent + self.retried + self.gave_up + self.lost_claims
    }
}

/// One round of the sender loop: claims up to `policy.batch` due messages
/// and tries each once.
pub async fn deliver_due<S: MailStore, T: MailTransport>(
    store: &S,
    transport: &T,
    policy: &DeliveryPolicy,
) -> Result<DeliveryReport, StoreError> {
    let now = Utc::now();
    let claim = Uuid::new_v4();
    let lease_until = now + chrono_duration(policy.lease);
    let due = store
        .claim_mail(claim, now, lease_until, policy.batch)
        .await?;
    let mut report = DeliveryReport::default();
    for queued in due {
        let outcome = match transport.send(&queued.mail).await {
            Ok(reply) => {
                tracing::info!(mail_id = %queued.mail.id, %reply, "mail sent");
                report.sent += 1;
                MailOutcome::Sent
            }
            Err(error) => {
                let next = match &error {
                    MailError::Transient(_) => {
                        policy.next_attempt(queued.attempts, queued.mail.created_at, Utc::now())
                    }
                    MailError::Permanent(_) => None,
                };
                match next {
                    Some(at) => {
                        tracing::warn!(mail_id = %queued.mail.id, attempts = queued.attempts,
                            %error, retry_at = %at, "mail not sent; will retry");
                        report.retried += 1;
                        MailOutcome::Retry {
                            at,
                            error: error.to_string(),
                        }
                    }
                    None => {
                        tracing::error!(mail_id = %queued.mail.id, attempts = queued.attempts,
                            %error, "mail given up");
                        report.gave_up += 1;
                        MailOutcome::GaveUp {
                            error: error.to_string(),
                        }
                    }
                }
            }
        };
        let recorded = store
            .finish_mail(queued.mail.id, queued.claim, &outcome, Utc::now())
            .await?;
        if !recorded {
            report.lost_claims += 1;
        }
    }
    Ok(report)
}

/// The messages Tessera sends, with what each needs to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// "Confirm your email address" (after registration or on request).
    VerifyEmail,
    /// "Reset your password".
    ResetPassword,
    /// "Your password was changed" (after a change or a reset).
    PasswordChanged,
    /// "Confirm your new email address", to the new address.
    ConfirmEmailChange,
    /// "Your email address was changed", to the old address.
    EmailChanged,
    /// `tessera mail test`.
    Test,
}

impl MailKind {
    /// The template name (`mail/<locale>/<name>.txt` and `.html`).
    pub fn template(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::ResetPassword => "reset_password",
            MailKind::PasswordChanged => "password_changed",
            MailKind::ConfirmEmailChange => "confirm_email_change",
            MailKind::EmailChanged => "email_changed",
            MailKind::Test => "test",
        }
    }

    pub const ALL: [MailKind; 6] = [
        MailKind::VerifyEmail,
        MailKind::ResetPassword,
        MailKind::PasswordChanged,
        MailKind::ConfirmEmailChange,
        MailKind::EmailChanged,
        MailKind::Test,
    ];
}

/// The values a message template can show.
#[derive(Clone, Default, serde::Serialize)]
pub struct MailValues {
    pub username: String,
    /// The address the message goes to.
    pub email: String,
    /// The one-time link, for messages that carry one.
    pub link: Option<String>,
    /// The link's lifetime, in whole minutes.
    pub link_minutes: Option<u64>,
    /// The other address of an email change (the new one, in the notice to
    /// the old one).
    pub new_email: Option<String>,
}

impl std::fmt::Debug for MailValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailValues")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The three parts of a rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders messages (templates live in the server).
pub trait MailComposer: Send + Sync + std::fmt::Debug + 'static {
    /// `locales`: the reader's preferred languages, best first (from
    /// `ui_locales` or `Accept-Language`); the first with a translation wins.
    fn compose(
        &self,
        kind: MailKind,
        values: &MailValues,
        locales: &[String],
    ) -> Result<Composed, String>;
}

/// What the mail use cases need besides the store: how to render, where
/// links point, how long they live.
#[derive(Debug, Clone)]
pub struct Mailer {
    pub composer: std::sync::Arc<dyn MailComposer>,
    /// `server.public_url`, without a trailing slash.
    pub public_url: String,
    /// `mail.link_ttl`.
    pub link_ttl: Duration,
    /// `accounts.require_verified_email`.
    pub require_verified_email: bool,
    /// Resending a verification message: per account.
    pub resend_limit: crate::rate::RateLimit,
    /// `/password/forgot` per address (known or not) and per client address.
    pub forgot_address_limit: crate::rate::RateLimit,
    pub forgot_client_limit: crate::rate::RateLimit,
}

impl Mailer {
    /// Renders `kind` for `to` into a message for the outbox.
    pub fn message(
        &self,
        kind: MailKind,
        to: &str,
        values: &MailValues,
        locales: &[String],
    ) -> Result<OutgoingMail, crate::AuthError> {
        let composed = self
            .composer
            .compose(kind, values, locales)
            .map_err(|e| crate::AuthError::Internal(format!("rendering {kind:?} mail: {e}")))?;
        Ok(OutgoingMail {
            id: Uuid::now_v7(),
            to: to.to_owned(),
            subject: composed.subject,
            text: composed.text,
            html: composed.html,
            created_at: crate::model::to_stored_precision(Utc::now()),
        })
    }

    /// The full URL of a link page carrying `token`.
    pub fn link_url(&self, path: &str, token: &str) -> String {
        format!(
            "{}{path}?token={token}",
            self.public_url.trim_end_matches('/')
        )
    }

    pub fn link_minutes(&self) -> u64 {
        self.link_ttl.as_secs().div_ceil(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_stop_at_the_deadline() {
        let policy = DeliveryPolicy {
            retry_min: Duration::from_secs(10),
            retry_max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(600),
            ..DeliveryPolicy::default()
        };
        let created = Utc::now();
        let delay = |attempts| {
            policy
                .next_attempt(attempts, created, created)
                .map(|at| (at - created).num_seconds())
        };
        assert_eq!(delay(1), Some(10));
        assert_eq!(delay(2), Some(20));
        assert_eq!(delay(3), Some(40));
        assert_eq!(delay(4), Some(60));
        assert_eq!(delay(40), Some(60), "no overflow on many attempts");
        let late = created + chrono::Duration::seconds(590);
        assert_eq!(policy.next_attempt(1, created, late), None);
    }
}
