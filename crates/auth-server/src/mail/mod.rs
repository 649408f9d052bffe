//! Mail: configuration, rendering, transports, and the sender loop that
//! works the outbox the domain writes (see `auth_core::mail`).

pub mod compose;
pub mod config;
pub mod outbox;
pub mod transport;

pub use compose::{preferred_locales, TemplateComposer};
pub use config::{AccountsConfig, MailConfig};
pub use transport::Sender;

/// The reader's languages for a message caused by `req`
/// (`Accept-Language`).
pub fn request_locales(req: &poem::Request) -> Vec<String> {
    flow_locales(req, None)
}

/// The reader's languages for a message caused in an authorization flow:
/// the flow's `ui_locales` first, then `Accept-Language`.
pub fn flow_locales(req: &poem::Request, ui_locales: Option<&str>) -> Vec<String> {
    let accept = req
        .header(poem::http::header::ACCEPT_LANGUAGE)
        .filter(|v| v.len() <= 256);
    preferred_locales(ui_locales, accept)
}

/// `tessera mail test --to ADDRESS`: renders the test message and sends it
/// through the configured transport directly; the server's final reply.
pub async fn send_test(config: &crate::Config, to: &str) -> anyhow::Result<String> {
    use auth_core::{MailKind, MailTransport, MailValues};
    let composer = TemplateComposer::new(config)?;
    let values = MailValues {
        email: to.to_owned(),
        ..MailValues::default()
    };
    let composed = auth_core::MailComposer::compose(&composer, MailKind::Test, &values, &[])
        .map_err(|e| anyhow::anyhow!("rendering the test message: {e}"))?;
    let mail = auth_core::OutgoingMail {
        id: uuid::Uuid::now_v7(),
        to: to.to_owned(),
        subject: composed.subject,
        text: composed.text,
        html: composed.html,
        created_at: chrono::Utc::now(),
    };
    let sender = Sender::from_config(config)?;
    Ok(sender.send(&mail).await?)
}
