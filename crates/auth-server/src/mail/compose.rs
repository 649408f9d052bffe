//! Rendering messages: minijinja templates embedded in the binary, each
//! replaceable by a file of the same path under `ui.templates_dir`
//! (`mail/en/verify_email.txt`), and translatable by adding a folder
//! (`mail/fr/verify_email.txt` and `.html`): no code.
//!
//! The `.txt` template's first line is `Subject: ...`; the rest is the text
//! part. The `.html` template is the HTML part (auto-escaped).

use std::path::PathBuf;

use auth_core::{Composed, MailComposer, MailKind, MailValues};
use minijinja::{context, Environment};

use crate::config::Config;

/// The shipped locale, used when no preferred one has a translation.
pub const DEFAULT_LOCALE: &str = "en";

macro_rules! embedded {
    ($($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("templates/", $path)))),+]
    };
}

const TEMPLATES: &[(&str, &str)] = embedded!(
    "base.html",
    "button.html",
    "en/verify_email.txt",
    "en/verify_email.html",
    "en/reset_password.txt",
    "en/reset_password.html",
    "en/password_changed.txt",
    "en/password_changed.html",
    "en/confirm_email_change.txt",
    "en/confirm_email_change.html",
    "en/email_changed.txt",
    "en/email_changed.html",
    "en/test.txt",
    "en/test.html",
);

/// Renders [`MailKind`]s for the domain.
pub struct TemplateComposer {
    env: Environment<'static>,
    overrides: Option<PathBuf>,
    product_name: String,
}

impl std::fmt::Debug for TemplateComposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateComposer")
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

fn embedded(name: &str) -> Option<&'static str> {
    let relative = name.strip_prefix("mail/")?;
    TEMPLATES
        .iter()
        .find(|(path, _)| *path == relative)
        .map(|(_, source)| *source)
}

impl TemplateComposer {
    /// Loads and checks every shipped message (a broken override is a
    /// start-up error, not a lost message).
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let overrides = config.ui.templates_dir.clone();
        let mut env = Environment::new();
        let dir = overrides.clone();
        env.set_loader(move |name| {
            if let Some(dir) = &dir {
                let path = dir.join(name);
                if !name.contains("..") && path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("cannot read {}: {e}", path.display()),
                        )
                    });
                }
            }
            Ok(embedded(name).map(str::to_owned))
        });
        let composer = Self {
            env,
            overrides,
            product_name: config.ui.product_name.clone(),
        };
        let sample = MailValues {
            username: "sample".into(),
            email: "sample@example.org".into(),
            link: Some("https://example.org/link".into()),
            link_minutes: Some(60),
            new_email: Some("new@example.org".into()),
        };
        for kind in MailKind::ALL {
            for locale in composer.locales_of(kind) {
                composer.render(kind, &sample, &locale).map_err(|e| {
                    anyhow::anyhow!("mail template {locale}/{}: {e}", kind.template())
                })?;
            }
        }
        Ok(composer)
    }

    fn exists(&self, name: &str) -> bool {
        embedded(name).is_some()
            || self
                .overrides
                .as_ref()
                .is_some_and(|dir| dir.join(name).is_file())
    }

    /// The locales with a translation of `kind`: English and every folder
    /// under `templates_dir/mail/` that has it.
    fn locales_of(&self, kind: MailKind) -> Vec<String> {
        let mut locales = vec![DEFAULT_LOCALE.to_owned()];
        if let Some(dir) = &self.overrides {
            if let Ok(entries) = std::fs::read_dir(dir.join("mail")) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_lowercase();
                    if name != DEFAULT_LOCALE
                        && self.exists(&format!("mail/{name}/{}.txt", kind.template()))
                    {
                        locales.push(name);
                    }
                }
            }
        }
        locales
    }

    /// The first of `preferred` (`fr-CA`, then `fr`) with a translation.
    fn pick_locale(&self, kind: MailKind, preferred: &[String]) -> String {
        for tag in preferred {
            let tag = tag.to_lowercase();
            let primary = tag.split('-').next().unwrap_or_default().to_owned();
            for candidate in [tag, primary] {
                let valid = !candidate.is_empty()
                    && candidate
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-');
                if valid && self.exists(&format!("mail/{candidate}/{}.txt", kind.template())) {
                    return candidate;
                }
            }
        }
        DEFAULT_LOCALE.to_owned()
    }

    fn render(
        &self,
        kind: MailKind,
        values: &MailValues,
        locale: &str,
    ) -> Result<Composed, String> {
        let values = context! {
            product_name => &self.product_name,
            locale => locale,
            ..minijinja::Value::from_serialize(values)
        };
        let name = kind.template();
        let text = self
            .env
            .get_template(&format!("mail/{locale}/{name}.txt"))
            .and_then(|t| t.render(&values))
            .map_err(|e| e.to_string())?;
        let html = self
            .env
            .get_template(&format!("mail/{locale}/{name}.html"))
            .and_then(|t| t.render(&values))
            .map_err(|e| e.to_string())?;
        let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .strip_prefix("Subject:")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or("the .txt template must start with a `Subject: ...` line")?;
        Ok(Composed {
            subject: subject.to_owned(),
            text: body.trim_start_matches('\n').to_owned(),
            html,
        })
    }
}

impl MailComposer for TemplateComposer {
    fn compose(
        &self,
        kind: MailKind,
        values: &MailValues,
        locales: &[String],
    ) -> Result<Composed, String> {
        self.render(kind, values, &self.pick_locale(kind, locales))
    }
}

/// The reader's languages, best first: OpenID Connect `ui_locales`
/// (space-separated) before `Accept-Language` (by `q`, ties in order).
pub fn preferred_locales(ui_locales: Option<&str>, accept_language: Option<&str>) -> Vec<String> {
    let mut locales: Vec<String> = ui_locales
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut weighted: Vec<(u16, usize, String)> = accept_language
        .unwrap_or_default()
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let valid = !tag.is_empty() && tag != "*" && tag.len() <= 35;
            (valid && q > 0.0).then(|| ((q * 1000.0) as u16, i, tag.to_owned()))
        })
        .take(10)
        .collect();
    weighted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    locales.extend(weighted.into_iter().map(|(_, _, tag)| tag));
    locales
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_come_from_ui_locales_then_accept_language_by_weight() {
        assert_eq!(
            preferred_locales(Some("de"), Some("fr;q=0.5, en-GB, *;q=0.1, es;q=0")),
            vec!["de", "en-GB", "fr"]
        );
        assert!(preferred_locales(None, None).is_empty());
    }

    #[test]
    fn every_shipped_message_renders_with_a_subject_and_both_parts() {
        let composer = TemplateComposer::new(&Config::default()).unwrap_or_else(|e| panic!("{e}"));
        let values = MailValues {
            username: "ada".into(),
            email: "ada@example.org".into(),
            link: Some("https://id.example.org/password/reset?token=abc&x=<b>".into()),
            link_minutes: Some(60),
            new_email: Some("new@example.org".into()),
        };
        for kind in MailKind::ALL {
            let mail = composer
                .compose(kind, &values, &["fr".into()])
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert!(!mail.subject.is_empty() && !mail.subject.contains('\n'));
            assert!(mail.html.contains("<html"), "{kind:?}");
            if matches!(
                kind,
                MailKind::ResetPassword | MailKind::VerifyEmail | MailKind::ConfirmEmailChange
            ) {
                assert!(mail.text.contains("token=abc&x=<b>"), "text is not escaped");
                assert!(
                    mail.html.contains("token=abc&amp;x=&lt;b&gt;"),
                    "HTML is escaped"
                );
            }
        }
    }

    #[test]
    fn a_translation_is_a_folder_of_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fr = dir.path().join("mail/fr");
        std::fs::create_dir_all(&fr).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(fr.join("test.txt"), "Subject: Essai\n\nÇa marche.")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(fr.join("test.html"), "<html><p>Ça marche.</p></html>")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut config = Config::default();
        config.ui.templates_dir = Some(dir.path().to_owned());
        let composer = TemplateComposer::new(&config).unwrap_or_else(|e| panic!("{e}"));
        let values = MailValues::default();
        let french = composer
            .compose(MailKind::Test, &values, &["fr-CA".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(french.subject, "Essai");
        let english = composer
            .compose(MailKind::ResetPassword, &values, &["fr".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            english.subject.starts_with("Reset"),
            "no French reset: English"
        );
    }
}
