//! OpenID Connect ID tokens (Core 1.0 §2, §3.1.3.6, §3.1.3.7).
//!
//! ID tokens are always signed with an asymmetric key (relying parties
//! verify them from the JWKS; a shared secret would be the client secret,
//! which public clients do not have). The key set is separate from the
//! access tokens': RS256 is what every relying party supports, whatever
//! signs access tokens.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::keys::{KeyError, SigningAlgorithm};
use crate::model::User;
use crate::token::{TokenError, TokenKeys, ACCESS_TOKEN_TYPE};

/// RFC 8176: the person entered a password.
pub const AMR_PASSWORD: &str = "pwd";
/// A one-time code (authenticator app or recovery code).
pub const AMR_OTP: &str = "otp";
/// A hardware-secured key (a passkey).
pub const AMR_HWK: &str = "hwk";
/// User presence verified by the authenticator (PIN or biometric).
pub const AMR_USER: &str = "user";
/// More than one factor.
pub const AMR_MFA: &str = "mfa";

/// Whether a space-separated scope grants `wanted`.
pub fn scope_has(scope: Option<&str>, wanted: &str) -> bool {
    scope.is_some_and(|s| s.split(' ').any(|s| s == wanted))
}

/// The claims about the person that scopes release (Core §5.4), shared by
/// ID tokens and `/userinfo` so both always say the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileClaims {
    /// With scope `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// With scope `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// With scope `email`: whether the person proved the address by
    /// following a link sent to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl ProfileClaims {
    pub fn of(user: &User, scope: Option<&str>) -> Self {
        let email = scope_has(scope, "email");
        Self {
            preferred_username: scope_has(scope, "profile").then(|| user.username.clone()),
            email: email.then(|| user.email.clone()),
            email_verified: email.then_some(user.email_verified),
        }
    }
}

/// The claims of an ID token (Core §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    /// The user id: the same `sub` as access tokens and `/userinfo`.
    pub sub: String,
    /// The client id.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// When the person signed in (always present: relying parties that
    /// sent `max_age` must check it).
    pub auth_time: i64,
    /// Exactly as the authorization request sent it; absent when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Left half of the access token's hash (Core §3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// RFC 8176 authentication methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The browser sign-in session (what `/logout` ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(flatten)]
    pub profile: ProfileClaims,
}

/// What goes into one ID token besides the issuer and the times.
#[derive(Debug, Clone)]
pub struct IdTokenFacts<'a> {
    pub user: &'a User,
    pub client_id: &'a str,
    pub scope: Option<&'a str>,
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
    pub access_token: &'a str,
    pub amr: Vec<String>,
    pub sid: Option<String>,
}

/// Signs ID tokens and recognises the ones it signed (`id_token_hint`).
#[derive(Debug)]
pub struct IdTokenIssuer {
    keys: TokenKeys,
    algorithm: SigningAlgorithm,
    issuer: String,
    ttl: Duration,
}

impl IdTokenIssuer {
    /// Refuses a key set whose signing key is a shared secret.
    pub fn new(keys: TokenKeys, issuer: String, ttl: Duration) -> Result<Self, KeyError> {
        let algorithm = match keys.signing.algorithm {
            Algorithm::RS256 => SigningAlgorithm::RS256,
            Algorithm::ES256 => SigningAlgorithm::ES256,
            Algorithm::EdDSA => SigningAlgorithm::EdDSA,
            _ => {
                return Err(KeyError::Invalid {
                    kid: keys.signing.kid.clone(),
                    reason: "ID tokens need an asymmetric key (RS256, ES256 or EdDSA)".into(),
                })
            }
        };
        Ok(Self {
            keys,
            algorithm,
            issuer,
            ttl,
        })
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// The JWS `alg` new ID tokens carry.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// `at_hash` (Core §3.1.3.6): the left half of the hash of the access
    /// token's ASCII, with the hash of the signing algorithm — SHA-256 for
    /// RS256 and ES256, SHA-512 for EdDSA (Ed25519 hashes with SHA-512).
    pub fn at_hash(&self, access_token: &str) -> String {
        let digest: Vec<u8> = match self.algorithm {
            SigningAlgorithm::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
            _ => Sha256::digest(access_token.as_bytes()).to_vec(),
        };
        URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
    }

    /// Signs an ID token valid from now for the configured lifetime.
    pub fn issue(&self, facts: IdTokenFacts<'_>) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = IdClaims {
            iss: self.issuer.clone(),
            sub: facts.user.id.to_string(),
            aud: facts.client_id.to_owned(),
            exp: now.saturating_add(ttl),
            iat: now,
            auth_time: facts.auth_time,
            nonce: facts.nonce.map(str::to_owned),
            at_hash: Some(self.at_hash(facts.access_token)),
            amr: facts.amr,
            sid: facts.sid,
            profile: ProfileClaims::of(facts.user, facts.scope),
        };
        let mut header = Header::new(self.keys.signing.algorithm);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.keys.signing.kid.clone());
        self.keys.signing.sign(&header, &claims)
    }

    /// An ID token this server signed, as an `id_token_hint` (Core
    /// §3.1.2.1, RP-Initiated Logout §2): signature, key/algorithm pairing
    /// and issuer are checked; expiry is not, because a hint is typically
    /// an ID token that has already expired.
    pub fn verify_hint(&self, token: &str) -> Result<IdClaims, TokenError> {
        let (header, key) = self.keys.key_for(token)?;
        if header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE))
        {
            return Err(TokenError::WrongType);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        jsonwebtoken::decode::<IdClaims>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                _ => TokenError::Malformed,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_private_key_pem, parse_private_key_pem};
    use chrono::Utc;
    use uuid::Uuid;

    fn user() -> User {
        User {
            id: Uuid::now_v7(),
            username: "Alice".into(),
            email: "alice@x.org".into(),
            password_hash: String::new(),
            created_at: Utc::now(),
            disabled: false,
            email_verified: false,
        }
    }

    fn issuer(alg: SigningAlgorithm, kid: &str) -> (IdTokenIssuer, String) {
        let pem = generate_private_key_pem(alg).unwrap();
        let keys = TokenKeys::asymmetric(parse_private_key_pem(kid, &pem).unwrap(), vec![]);
        let issuer =
            IdTokenIssuer::new(keys, "http://op.test".into(), Duration::from_secs(300)).unwrap();
        (issuer, pem)
    }

    fn facts<'a>(
        user: &'a User,
        scope: Option<&'a str>,
        nonce: Option<&'a str>,
    ) -> IdTokenFacts<'a> {
        IdTokenFacts {
            user,
            client_id: "webapp",
            scope,
            auth_time: 1_700_000_000,
            nonce,
            access_token: "access-token",
            amr: vec![AMR_PASSWORD.into()],
            sid: Some("browser".into()),
        }
    }

    #[test]
    fn claims_follow_scope_and_nonce_and_verify_back() {
        for alg in [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256] {
            let (ids, _) = issuer(alg, "k1");
            let u = user();
            let token = ids
                .issue(facts(&u, Some("openid email"), Some("n-0S6_WzA2Mj")))
                .unwrap();
            let claims = ids.verify_hint(&token).unwrap();
            assert_eq!(claims.sub, u.id.to_string());
            assert_eq!(claims.aud, "webapp");
            assert_eq!(claims.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
            assert_eq!(claims.auth_time, 1_700_000_000);
            assert_eq!(claims.exp - claims.iat, 300);
            assert_eq!(claims.profile.email.as_deref(), Some("alice@x.org"));
            assert_eq!(claims.profile.email_verified, Some(false));
            let verified = User {
                email_verified: true,
                ..u.clone()
            };
            let token = ids
                .issue(facts(&verified, Some("openid email"), None))
                .unwrap();
            let claims = ids.verify_hint(&token).unwrap();
            assert_eq!(
                claims.profile.email_verified,
                Some(true),
                "from the account"
            );
            assert_eq!(claims.profile.preferred_username, None);
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg.jwt());
            assert_eq!(header.kid.as_deref(), Some("k1"));

            let bare = ids.issue(facts(&u, Some("openid profile"), None)).unwrap();
            let payload = bare.split('.').nth(1).unwrap();
            let json: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            assert!(json.get("nonce").is_none(), "absent when not sent");
            assert!(json.get("email").is_none());
            assert_eq!(json["preferred_username"], "Alice");
            assert_eq!(json["amr"], serde_json::json!(["pwd"]));
        }
    }

    #[test]
    fn at_hash_uses_the_hash_of_the_algorithm() {
        // Core §3.1.3.6 / the example of Core A.3: SHA-256, left 128 bits.
        let (es, _) = issuer(SigningAlgorithm::ES256, "e");
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        let expected = URL_SAFE_NO_PAD.encode(&Sha256::digest(token.as_bytes())[..16]);
        assert_eq!(es.at_hash(token), expected);
        assert_eq!(es.at_hash(token).len(), 22);
        let (ed, _) = issuer(SigningAlgorithm::EdDSA, "d");
        let expected = URL_SAFE_NO_PAD.encode(&Sha512::digest(token.as_bytes())[..32]);
        assert_eq!(ed.at_hash(token), expected);
    }

    #[test]
    fn hints_from_elsewhere_or_of_another_kind_are_refused() {
        let (ids, _) = issuer(SigningAlgorithm::EdDSA, "k1");
        let (other, _) = issuer(SigningAlgorithm::EdDSA, "k1");
        let u = user();
        let foreign = other.issue(facts(&u, None, None)).unwrap();
        assert_eq!(ids.verify_hint(&foreign), Err(TokenError::BadSignature));
        assert_eq!(ids.verify_hint("garbage"), Err(TokenError::Malformed));
        assert!(IdTokenIssuer::new(
            TokenKeys::hs256(b"0123456789abcdef0123456789abcdef"),
            "x".into(),
            Duration::from_secs(1)
        )
        .is_err());
    }
}
