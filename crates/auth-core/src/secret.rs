//! Values that must never reach a log line or a `Debug` dump: signing
//! secrets and the passwords inside database URLs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string. `Debug` and `Display` print `[redacted]`; the value is
/// read only through [`Secret::expose`], so every use is visible in review.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Serialised redacted, like `Debug`: a configuration dumped anywhere shows
/// no secret. (Tessera's built-in defaults, which figment reads back through
/// `Serialize`, contain none.)
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// A database URL whose password (`scheme://user:PASSWORD@host/...`) is
/// hidden from `Debug` and `Display`; the rest stays readable, because
/// "which host, which database" is what an operator needs in a log.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme before `://` (or `:` for `sqlite:file.db`), if any.
    pub fn scheme(&self) -> Option<&str> {
        let (scheme, _) = self.0.split_once(':')?;
        let valid = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        valid.then_some(scheme)
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return url.clone();
        };
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let Some(at) = rest[..authority_end].rfind('@') else {
            return url.clone();
        };
        match rest[..at].split_once(':') {
            Some((user, _password)) => {
                format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
            }
            None => url.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Serialised with the password redacted, like `Display`.
impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(DatabaseUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.expose(), "hunter2-hunter2-hunter2");
    }

    #[test]
    fn database_urls_hide_only_the_password() {
        let url = DatabaseUrl::new(
            "postgres://tessera:s3cr%40t@db.internal:5432/tessera?sslmode=require",
        );
        assert_eq!(
            url.redacted(),
            "postgres://tessera:***@db.internal:5432/tessera?sslmode=require"
        );
        assert!(!format!("{url:?} {url}").contains("s3cr"));
        assert_eq!(url.scheme(), Some("postgres"));
        for plain in [
            "sqlite://data/tessera.db",
            "postgres://u@h/db",
            "mongodb://h/x?a=b@c",
        ] {
            assert_eq!(DatabaseUrl::new(plain).redacted(), plain);
        }
        assert_eq!(
            DatabaseUrl::new("mongodb://u:p@a:1,b:2/x").redacted(),
            "mongodb://u:***@a:1,b:2/x"
        );
        assert_eq!(DatabaseUrl::new("sqlite:data.db").scheme(), Some("sqlite"));
        assert_eq!(DatabaseUrl::new("data.db").scheme(), None);
    }
}
