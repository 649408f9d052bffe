//! The mail transports: SMTP (lettre, rustls), a folder of `.eml` files,
//! and the log. One [`Sender`] per process, built from `[mail]`.

use std::path::PathBuf;
use std::str::FromStr;

use auth_core::{MailError, MailTransport, OutgoingMail};
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{MailConfig, SmtpSecurity, TransportKind};
use crate::config::Config;

enum Transport {
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
    File(PathBuf),
    Log,
}

/// Sends messages through the configured transport.
pub struct Sender {
    transport: Transport,
    from: Mailbox,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::File(_) => "file",
            Transport::Log => "log",
        };
        f.debug_struct("Sender").field("transport", &kind).finish()
    }
}

impl Sender {
    /// The transport `[mail]` describes (connections open lazily).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mail: &MailConfig = &config.mail;
        let from = Mailbox::from_str(&mail.from)
            .map_err(|e| anyhow::anyhow!("mail.from = {:?}: {e}", mail.from))?;
        let transport = match mail.transport {
            TransportKind::Smtp => Transport::Smtp(Box::new(smtp(mail)?)),
            TransportKind::File => Transport::File(
                mail.file_dir
                    .clone()
                    .unwrap_or_else(|| config.data_dir().join("mail")),
            ),
            TransportKind::Log => Transport::Log,
        };
        Ok(Self { transport, from })
    }

    /// The message as MIME: `multipart/alternative`, text then HTML.
    fn mime(&self, mail: &OutgoingMail) -> Result<Message, MailError> {
        let to = Mailbox::from_str(&mail.to)
            .map_err(|e| MailError::Permanent(format!("recipient address: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}@{}>", mail.id, self.from.email.domain())))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(mail.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(mail.html.clone()),
                    ),
            )
            .map_err(|e| MailError::Permanent(format!("building the message: {e}")))
    }
}

fn smtp(mail: &MailConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let smtp = &mail.smtp;
    let builder = match smtp.security {
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
    };
    let mut builder = builder
        .port(smtp.port())
        .timeout(Some(smtp.timeout))
        .pool_config(PoolConfig::new().max_size(smtp.pool_size));
    if let (Some(username), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder
            .credentials(Credentials::new(
                username.clone(),
                password.expose().to_owned(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(builder.build())
}

/// Connection failures, timeouts and 4xx replies are worth retrying; 5xx
/// replies are final.
fn classify(error: lettre::transport::smtp::Error) -> MailError {
    if error.is_permanent() {
        MailError::Permanent(error.to_string())
    } else {
        MailError::Transient(error.to_string())
    }
}

impl MailTransport for Sender {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError> {
        let message = self.mime(mail)?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                let response = smtp.send(message).await.map_err(classify)?;
                let text: Vec<&str> = response.message().collect();
                Ok(format!("{} {}", response.code(), text.join(" ")))
            }
            Transport::File(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| MailError::Transient(format!("{}: {e}", dir.display())))?;
                let path = dir.join(format!("{}.eml", mail.id));
                tokio::fs::write(&path, message.formatted())
                    .await
                    .map_err(|e| MailError::Transient(format!("{}: {e}", path.display())))?;
                Ok(format!("written to {}", path.display()))
            }
            Transport::Log => {
                // Development only (refused in production): the link is the point.
                tracing::info!(
                    to = %mail.to,
                    subject = %mail.subject,
                    text = %mail.text,
                    "mail (mail.transport = log)"
                );
                Ok("logged".into())
            }
        }
    }
}
