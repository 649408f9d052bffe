//! Validated value types: the only way input reaches the services and stores.
//!
//! Every rule of API.md's `POST /users` lives here, once.

use std::collections::HashSet;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;

pub const USERNAME_MIN_CHARS: usize = 3;
pub const USERNAME_MAX_CHARS: usize = 32;
pub const EMAIL_MAX_CHARS: usize = 254;
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// One broken rule, named by the input field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// All the rules an input broke, so a client can fix them in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// NFKC, so look-alike forms (full-width letters, ligatures) compare equal
/// before the uniqueness check.
fn normalise(raw: &str) -> String {
    raw.nfkc().collect()
}

/// A username: 3–32 characters of `[A-Za-z0-9_.-]` after NFKC. Case is kept
/// for display; [`Username::key`] is the case-insensitive identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    key: String,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = normalise(raw);
        let len = value.chars().count();
        if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&len) {
            return Err(FieldError::new(
                "username",
                format!("must be {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} characters long"),
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(FieldError::new(
                "username",
                "may contain only letters A-Z, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self {
            key: username_key(&value),
            display: value,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The identity used for uniqueness and lookups.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The key of a (valid, hence ASCII) username: what uniqueness, lookups
/// and the account list's order use.
pub fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// An email address (RFC 5321/5322 syntax, at most 254 characters), NFKC
/// normalised; the whole address compares case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    key: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = normalise(raw);
        if value.chars().count() > EMAIL_MAX_CHARS {
            return Err(FieldError::new(
                "email",
                format!("must be at most {EMAIL_MAX_CHARS} characters long"),
            ));
        }
        if value.chars().any(char::is_control) || !email_address::EmailAddress::is_valid(&value) {
            return Err(FieldError::new("email", "is not a valid email address"));
        }
        Ok(Self {
            key: email_key(&value),
            display: value,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

fn email_key(normalised: &str) -> String {
    normalised.to_lowercase()
}

/// What a login string (username *or* email) looks up by. Usernames cannot
/// contain `@`, so the two never overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginKey {
    Username(String),
    Email(String),
}

impl LoginKey {
    pub fn from_login(login: &str) -> Self {
        let value = normalise(login);
        if value.contains('@') {
            LoginKey::Email(email_key(&value))
        } else {
            LoginKey::Username(value.to_lowercase())
        }
    }
}

/// The bundled list of common passwords (30,000, most frequent first),
/// compiled into the binary: nothing is fetched at run time.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// `true` when `password` (compared in lower case) is on the bundled list.
pub fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().as_str())
}

/// A password that satisfies the policy. Never trimmed or normalised: the
/// bytes the user typed are the bytes that get hashed. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Checks a new password against the policy. `username` and `email` are
    /// the account's own (as typed), which the password may not equal.
    pub fn parse(
        field: &'static str,
        raw: &str,
        username: &str,
        email: &str,
    ) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if len < PASSWORD_MIN_CHARS {
            return Err(FieldError::new(
                field,
                format!("must be at least {PASSWORD_MIN_CHARS} characters long"),
            ));
        }
        if len > PASSWORD_MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("must be at most {PASSWORD_MAX_CHARS} characters long"),
            ));
        }
        if raw.contains('\0') {
            return Err(FieldError::new(field, "must not contain NUL characters"));
        }
        let lowered = raw.to_lowercase();
        if lowered == username.to_lowercase() || lowered == email.to_lowercase() {
            return Err(FieldError::new(
                field,
                "must not be the same as the username or email",
            ));
        }
        if is_common_password(raw) {
            return Err(FieldError::new(
                field,
                "is too common; choose a password that is not on lists of frequently used passwords",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b-c_9").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("alice@x").is_err());
        assert!(Username::parse("{\"$ne\": \"\"}").is_err());
        assert!(Username::parse("$where").is_err());
        assert!(Username::parse("ali\0ce").is_err());
        assert!(Username::parse("élise").is_err());
    }

    #[test]
    fn username_is_nfkc_normalised_and_keyed_case_insensitively() {
        // Full-width "Ａｌｉｃｅ" is NFKC-equal to "Alice".
        let wide = Username::parse("\u{FF21}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}").unwrap();
        assert_eq!(wide.as_str(), "Alice");
        assert_eq!(wide.key(), "alice");
        assert_eq!(Username::parse("ALICE").unwrap().key(), "alice");
        assert_eq!(Username::parse("Alice").unwrap().as_str(), "Alice");
    }

    #[test]
    fn email_rules() {
        assert!(Email::parse("a@x.org").is_ok());
        assert_eq!(Email::parse("A@X.org").unwrap().key(), "a@x.org");
        assert!(Email::parse("not-an-email").is_err());
        assert!(Email::parse("a@").is_err());
        assert!(Email::parse("@x.org").is_err());
        assert!(Email::parse("a b@x.org").is_err());
        let long = format!("{}@x.org", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn password_rules() {
        let ok = |p: &str| Password::parse("password", p, "alice", "alice@x.org").is_ok();
        assert!(ok("correct horse battery"));
        assert!(!ok("short7!"));
        assert!(ok(&"x".repeat(PASSWORD_MAX_CHARS).replace('x', "é")));
        assert!(!ok(&"x".repeat(PASSWORD_MAX_CHARS + 1)));
        assert!(!ok("password"));
        assert!(!ok("12345678"));
        assert!(!ok("qwerty123"));
        assert!(!ok("PassWord"));
        assert!(!ok("alice@x.org"));
        assert!(Password::parse("password", "aliceinwonder", "aliceinwonder", "a@x.org").is_err());
        // Never trimmed: surrounding spaces are part of the password.
        let spaced = Password::parse("password", "  spaced out pw  ", "u", "e@x.org").unwrap();
        assert_eq!(spaced.expose(), "  spaced out pw  ");
        assert_eq!(format!("{spaced:?}"), "Password(<redacted>)");
    }

    #[test]
    fn bundled_list_has_at_least_ten_thousand_entries() {
        assert!(COMMON_PASSWORDS.len() >= 10_000);
    }

    #[test]
    fn login_key_splits_on_at_sign() {
        assert_eq!(
            LoginKey::from_login("Alice"),
            LoginKey::Username("alice".into())
        );
        assert_eq!(
            LoginKey::from_login("A@X.org"),
            LoginKey::Email("a@x.org".into())
        );
    }
}
