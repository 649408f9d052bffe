//! The authorization-code flow's records and rules (RFC 6749 §4.1, RFC 7636,
//! OAuth 2.1): what `/authorize` accepts, the pending request a sign-in page
//! continues, the code, PKCE, browser sign-in sessions and remembered consent.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::model::TokenDigest;

/// `prompt` (OpenID Connect Core §3.1.2.1; `create` from Initiating User
/// Registration 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Never show a page: answer `login_required` / `consent_required`.
    None,
    /// Ask for the password even with a sign-in session.
    Login,
    /// Ask for consent even when it was given before.
    Consent,
    /// Open the create-account page first.
    Create,
}

impl Prompt {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "none" => Prompt::None,
            "login" => Prompt::Login,
            "consent" => Prompt::Consent,
            "create" => Prompt::Create,
            _ => return None,
        })
    }
}

/// A checked authorization request: the client and redirect URI are known
/// and every parameter is valid. This is what a pending request keeps and
/// what the code is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationParams {
    pub client_id: String,
    pub redirect_uri: String,
    /// Normalised granted scope (sorted, space-separated).
    pub scope: Option<String>,
    pub state: Option<String>,
    /// The S256 challenge (43 base64url characters).
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// `prompt` values, in order (`login consent` is allowed; `none` alone).
    pub prompt: Vec<Prompt>,
    /// Seconds; a sign-in older than this is asked again.
    pub max_age: Option<u64>,
    pub login_hint: Option<String>,
    /// The user an `id_token_hint` named: a browser signed in as someone
    /// else is asked to sign in (or gets `login_required`).
    #[serde(default)]
    pub hinted_user: Option<Uuid>,
    /// `ui_locales`, space-separated: messages caused by this flow (the
    /// verification mail of an account created here) use the first with a
    /// translation.
    #[serde(default)]
    pub ui_locales: Option<String>,
}

impl AuthorizationParams {
    pub fn prompts(&self, prompt: Prompt) -> bool {
        self.prompt.contains(&prompt)
    }

    /// Whether a sign-in at `auth_time` is recent enough at `now`.
    pub fn sign_in_is_fresh(&self, auth_time: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.max_age.is_none_or(|max| {
            let age = (now - auth_time).num_seconds();
            age <= i64::try_from(max).unwrap_or(i64::MAX)
        })
    }
}

/// An authorization request waiting for the person to sign in or consent.
/// Lives in the store so any replica serves the next page; expires in minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    /// Random (v4): it names the request in the page's URL.
    pub id: Uuid,
    pub params: AuthorizationParams,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What an authorization code was issued for; stored (as JSON beside the
/// code's digest) and checked at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub redirect_uri: String,
    pub user_id: Uuid,
    pub scope: Option<String>,
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// When the person signed in (OIDC `auth_time`).
    pub auth_time: DateTime<Utc>,
    /// The browser sign-in session the code came from, if any.
    pub browser_session_id: Option<Uuid>,
    /// How the person signed in (RFC 8176 `amr`). Codes stored before this
    /// field existed were all password sign-ins.
    #[serde(default = "password_amr")]
    pub amr: Vec<String>,
}

fn password_amr() -> Vec<String> {
    vec![crate::id_token::AMR_PASSWORD.to_owned()]
}

/// A stored authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code: the code itself is never stored.
    pub digest: TokenDigest,
    pub client_id: String,
    /// The session the code's redemption creates, chosen up front so that
    /// a second presentation knows which session to revoke (RFC 6749 §4.1.2).
    pub session_id: Uuid,
    pub grant: CodeGrant,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a code did, decided atomically by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// This call won: the code is now used.
    Redeemed(Box<AuthorizationCode>),
    /// The code was used before; its session must be revoked.
    AlreadyUsed { session_id: Uuid },
    /// Unknown or expired.
    Invalid,
}

/// A browser's sign-in session, named by a cookie holding a random token
/// whose digest is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub id: Uuid,
    pub digest: TokenDigest,
    pub user_id: Uuid,
    /// When the password was last entered in it.
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Slides forward while the session is used.
    pub idle_expires_at: DateTime<Utc>,
    /// Never moves: the absolute lifetime.
    pub expires_at: DateTime<Utc>,
    /// How the person signed in (RFC 8176 values: `pwd`, `otp`, `hwk`,
    /// `user`, `mfa`), carried into every code this session yields.
    pub amr: Vec<String>,
}

impl BrowserSession {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.idle_expires_at > now && self.expires_at > now
    }
}

/// What a person allowed a client that is not first-party: remembered so
/// the consent page is not shown again for the same scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    /// Normalised (sorted, space-separated); empty when no scope was asked.
    pub scope: String,
    /// When it was last granted or widened.
    pub granted_at: DateTime<Utc>,
}

/// RFC 7636 §4.2: `code_challenge` for S256 is 43 base64url characters.
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: `code_verifier` is 43–128 unreserved characters.
pub fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(verifier)) == challenge`, compared in
/// constant time.
pub fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    if !is_code_verifier(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// Whether the scopes in `granted` cover every scope of `requested`
/// (remembered consent covers a request for fewer scopes).
pub fn scope_covers(granted: &str, requested: Option<&str>) -> bool {
    requested.is_none_or(|requested| {
        requested
            .split(' ')
            .filter(|s| !s.is_empty())
            .all(|s| granted.split(' ').any(|g| g == s))
    })
}

/// `a ∪ b` as a normalised scope string.
pub fn scope_union(a: &str, b: Option<&str>) -> String {
    let mut all: Vec<&str> = a
        .split(' ')
        .chain(b.unwrap_or("").split(' '))
        .filter(|s| !s.is_empty())
        .collect();
    all.sort_unstable();
    all.dedup();
    all.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_s256_challenge(challenge));
        assert!(pkce_matches(challenge, verifier));
        assert!(!pkce_matches(challenge, &verifier.replace('d', "e")));
        assert!(
            !pkce_matches(challenge, challenge),
            "the challenge is not its own verifier"
        );
        assert!(!pkce_matches(challenge, "short"));
        assert!(!is_s256_challenge("plain-is-not-a-challenge"));
    }

    #[test]
    fn consent_covers_subsets_only() {
        assert!(scope_covers("email openid profile", Some("openid email")));
        assert!(scope_covers("openid", None));
        assert!(!scope_covers("openid", Some("openid email")));
        assert_eq!(scope_union("openid", Some("email openid")), "email openid");
    }

    #[test]
    fn max_age_bounds_the_sign_in_age() {
        let now = Utc::now();
        let params = AuthorizationParams {
            client_id: "c".into(),
            redirect_uri: "https://a/cb".into(),
            scope: None,
            state: None,
            code_challenge: String::new(),
            nonce: None,
            prompt: vec![],
            max_age: Some(60),
            login_hint: None,
            hinted_user: None,
            ui_locales: None,
        };
        assert!(params.sign_in_is_fresh(now - chrono::Duration::seconds(60), now));
        assert!(!params.sign_in_is_fresh(now - chrono::Duration::seconds(61), now));
    }
}
