//! OAuth clients (RFC 6749 §2): who may ask for tokens, from where, and for
//! what. Clients come from configuration and from the store; both are built
//! through [`ClientRegistration::validate`], so the rules live here once.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{to_stored_precision, TokenDigest};
use crate::refresh::OpaqueToken;
use crate::validation::{FieldError, ValidationErrors};

/// The client every token names when none was registered: v1's implicit
/// public client (`oauth.legacy_public_client`).
pub const LEGACY_CLIENT_ID: &str = "tessera";

/// Shortest secret accepted from configuration (a generated one is longer).
pub const MIN_SECRET_CHARS: usize = 32;

/// The grants a client may use (RFC 6749 §4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    Password,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::Password,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }
}

impl std::fmt::Display for GrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a client came from: configured clients cannot be changed by the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    Config,
    Store,
}

/// A registered client.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret; `None` for a public client. Secrets are
    /// high-entropy (32+ characters), so a fast hash is the right one: it is
    /// what GitHub and Stripe do for API keys.
    pub secret_digest: Option<TokenDigest>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    /// Skips the consent page.
    pub first_party: bool,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("public", &self.is_public())
            .field("redirect_uris", &self.redirect_uris)
            .field("grant_types", &self.grant_types)
            .field("scopes", &self.scopes)
            .field("first_party", &self.first_party)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a client secret: all that is kept of one.
pub fn digest_secret(secret: &str) -> TokenDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh secret (256 random bits, base64url), shown once.
pub fn generate_secret() -> String {
    OpaqueToken::generate().expose().to_owned()
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_digest.is_none()
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether `presented` is this client's secret (constant time). A public
    /// client has none, so nothing matches.
    pub fn secret_matches(&self, presented: &str) -> bool {
        self.secret_digest
            .is_some_and(|stored| bool::from(digest_secret(presented).ct_eq(&stored)))
    }

    /// The redirect URI a request may use: `requested` when registered
    /// (exact string comparison, or the loopback any-port rule for public
    /// clients, RFC 8252 §7.3), or the only registered one when none was
    /// sent. `None` means the request must not be redirected anywhere.
    pub fn redirect_uri_for(&self, requested: Option<&str>) -> Option<String> {
        match requested {
            None => match self.redirect_uris.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            },
            Some(uri) => {
                let registered = self
                    .redirect_uris
                    .iter()
                    .any(|r| r == uri || (self.is_public() && same_loopback_uri_any_port(r, uri)));
                registered.then(|| uri.to_owned())
            }
        }
    }

    /// `requested` (space-separated) when every scope in it is allowed for
    /// this client, normalised (sorted, no repeats); `Ok(None)` when none
    /// was asked; `Err` naming the first scope it may not have.
    pub fn granted_scope(&self, requested: Option<&str>) -> Result<Option<String>, String> {
        let Some(requested) = requested else {
            return Ok(None);
        };
        let asked: BTreeSet<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
        if let Some(refused) = asked.iter().find(|s| !self.scopes.iter().any(|a| a == *s)) {
            return Err((*refused).to_owned());
        }
        Ok((!asked.is_empty()).then(|| asked.into_iter().collect::<Vec<_>>().join(" ")))
    }
}

/// RFC 8252 §7.3: a loopback redirect URI (`http://127.0.0.1` or
/// `http://[::1]`) matches with any port, everything else exact.
fn same_loopback_uri_any_port(registered: &str, requested: &str) -> bool {
    match (loopback_parts(registered), loopback_parts(requested)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `(host, rest)` of a loopback URI with the port taken out.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let after_scheme = uri.strip_prefix("http://")?;
    let host = ["127.0.0.1", "[::1]"]
        .into_iter()
        .find(|h| after_scheme.starts_with(h))?;
    let rest = &after_scheme[host.len()..];
    let rest = match rest.strip_prefix(':') {
        Some(port_and_rest) => {
            let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 5 {
                return None;
            }
            &port_and_rest[digits..]
        }
        None => rest,
    };
    (rest.is_empty() || rest.starts_with('/')).then_some((host, rest))
}

/// A client as described by an operator (configuration or CLI), before
/// checking. `secret` is the plain secret, if any.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub secret: Option<crate::Secret>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<GrantType>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub first_party: bool,
}

impl std::fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("id", &self.id)
            .field("confidential", &self.secret.is_some())
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

/// Serialised without the secret (configuration dumps show none).
impl Serialize for ClientRegistration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("ClientRegistration", 8)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("secret", &self.secret)?;
        s.serialize_field("redirect_uris", &self.redirect_uris)?;
        s.serialize_field("post_logout_redirect_uris", &self.post_logout_redirect_uris)?;
        s.serialize_field("grant_types", &self.grant_types)?;
        s.serialize_field("scopes", &self.scopes)?;
        s.serialize_field("first_party", &self.first_party)?;
        s.end()
    }
}

impl Default for ClientRegistration {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: None,
            secret: None,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: default_grant_types(),
            scopes: default_scopes(),
            first_party: false,
        }
    }
}

/// What a client may do when the operator does not say.
pub fn default_grant_types() -> Vec<GrantType> {
    vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
}

/// The OpenID Connect scopes, which is what nearly every client asks for.
pub fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email", "offline_access"]
        .map(String::from)
        .to_vec()
}

impl ClientRegistration {
    /// Applies every rule, reporting all broken ones at once.
    pub fn validate(&self) -> Result<Client, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if !valid_client_id(&self.id) {
            errors.push(
                "id",
                "use 1 to 64 letters, digits and . _ ~ - (it appears in URLs)",
            );
        }
        let name = self.name.clone().unwrap_or_else(|| self.id.clone());
        if name.trim().is_empty() || name.chars().count() > 100 {
            errors.push(
                "name",
                "a name of 1 to 100 characters is shown on the consent page",
            );
        }
        if let Some(secret) = &self.secret {
            if secret.expose().chars().count() < MIN_SECRET_CHARS {
                errors.push(
                    "secret",
                    format!("a client secret needs at least {MIN_SECRET_CHARS} characters"),
                );
            }
        }
        let public = self.secret.is_none();
        for uri in &self.redirect_uris {
            if let Err(e) = check_redirect_uri("redirect_uris", uri) {
                errors.0.push(e);
            }
        }
        for uri in &self.post_logout_redirect_uris {
            if let Err(e) = check_redirect_uri("post_logout_redirect_uris", uri) {
                errors.0.push(e);
            }
        }
        if self.grant_types.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty()
        {
            errors.push(
                "redirect_uris",
                "the authorization_code grant needs at least one redirect URI",
            );
        }
        if public && self.grant_types.contains(&GrantType::ClientCredentials) {
            errors.push(
                "grant_types",
                "client_credentials needs a confidential client (one with a secret)",
            );
        }
        if self.grant_types.is_empty() {
            errors.push("grant_types", "allow at least one grant");
        }
        for scope in &self.scopes {
            if scope.is_empty() || !scope.bytes().all(is_scope_char) {
                errors.push("scopes", format!("`{scope}` is not a valid scope token"));
            }
        }
        errors.into_result()?;
        let mut grant_types = self.grant_types.clone();
        grant_types.sort_unstable();
        grant_types.dedup();
        let mut scopes = self.scopes.clone();
        scopes.sort_unstable();
        scopes.dedup();
        Ok(Client {
            id: self.id.clone(),
            name,
            secret_digest: self.secret.as_ref().map(|s| digest_secret(s.expose())),
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            grant_types,
            scopes,
            first_party: self.first_party,
            created_at: to_stored_precision(Utc::now()),
        })
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

fn valid_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

/// An absolute URI without a fragment (RFC 6749 §3.1.2); `http` only for
/// loopback and `localhost` (OAuth 2.1 §2.3.1: everything else over TLS,
/// or a private-use scheme for native apps).
fn check_redirect_uri(field: &'static str, uri: &str) -> Result<(), FieldError> {
    let parsed = url::Url::parse(uri)
        .map_err(|e| FieldError::new(field, format!("`{uri}` is not an absolute URI ({e})")))?;
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(FieldError::new(
            field,
            format!("`{uri}` has a fragment, which redirect URIs may not"),
        ));
    }
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if parsed.scheme() == "http" && !local {
        return Err(FieldError::new(
            field,
            format!("`{uri}` must use https (plain http is allowed for localhost and loopback)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(public: bool, uris: &[&str]) -> Client {
        ClientRegistration {
            id: "app".into(),
            secret: (!public).then(|| "x".repeat(40).into()),
            redirect_uris: uris.iter().map(|s| (*s).to_owned()).collect(),
            ..ClientRegistration::default()
        }
        .validate()
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let c = client(
            false,
            &["https://app.example/cb", "https://app.example/other"],
        );
        assert_eq!(
            c.redirect_uri_for(Some("https://app.example/cb"))
                .as_deref(),
            Some("https://app.example/cb")
        );
        for variant in [
            "https://app.example/cb/",
            "https://APP.example/cb",
            "https://app.example/cb?x=1",
            "https://app.example/cb#f",
            "https://app.example:444/cb",
            "http://app.example/cb",
        ] {
            assert_eq!(c.redirect_uri_for(Some(variant)), None, "{variant}");
        }
        assert_eq!(
            c.redirect_uri_for(None),
            None,
            "two registered: must say which"
        );
        let single = client(false, &["https://app.example/cb"]);
        assert_eq!(
            single.redirect_uri_for(None).as_deref(),
            Some("https://app.example/cb")
        );
    }

    #[test]
    fn loopback_uris_of_public_clients_match_any_port() {
        let native = client(true, &["http://127.0.0.1/cb", "http://[::1]:8000/cb"]);
        for ok in [
            "http://127.0.0.1:51234/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:1/cb",
        ] {
            assert!(native.redirect_uri_for(Some(ok)).is_some(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:51234/cb/",
            "http://127.0.0.1:51234/other",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:123456/cb",
            "http://127.0.0.10/cb",
            "http://localhost:5000/cb",
            "https://127.0.0.1:5000/cb",
        ] {
            assert!(native.redirect_uri_for(Some(bad)).is_none(), "{bad}");
        }
        let confidential = client(false, &["http://127.0.0.1/cb"]);
        assert!(confidential
            .redirect_uri_for(Some("http://127.0.0.1:5000/cb"))
            .is_none());
    }

    #[test]
    fn secrets_are_kept_as_digests_and_compared_whole() {
        let c = client(false, &["https://app.example/cb"]);
        assert!(c.secret_matches(&"x".repeat(40)));
        assert!(!c.secret_matches(&"x".repeat(39)));
        assert!(!client(true, &["https://app.example/cb"]).secret_matches(""));
        assert!(!format!("{c:?}").contains("xxxx"));
    }

    #[test]
    fn registrations_report_every_broken_rule() {
        let errors = ClientRegistration {
            id: "has space".into(),
            secret: Some("short".into()),
            redirect_uris: vec!["http://evil.example/cb".into(), "/relative".into()],
            scopes: vec!["ok".into(), "bad\"quote".into()],
            ..ClientRegistration::default()
        }
        .validate()
        .err()
        .map(|e| e.0.iter().map(|f| f.field).collect::<Vec<_>>());
        assert_eq!(
            errors,
            Some(vec![
                "id",
                "secret",
                "redirect_uris",
                "redirect_uris",
                "scopes"
            ])
        );
    }

    #[test]
    fn scopes_are_granted_only_from_the_clients_list() {
        let c = client(true, &["https://app.example/cb"]);
        assert_eq!(
            c.granted_scope(Some("profile openid openid")),
            Ok(Some("openid profile".into()))
        );
        assert_eq!(c.granted_scope(None), Ok(None));
        assert_eq!(c.granted_scope(Some("admin openid")), Err("admin".into()));
    }
}
