//! Access tokens: JWTs in the RFC 9068 profile (`typ: at+jwt`).
//!
//! Keys live in a [`TokenKeys`] set: one active signing key plus any number of
//! verification keys, each named by `kid`. Verification looks the key up by
//! the token's `kid` and accepts only that key's algorithm (RFC 8725 3.1), so
//! `alg: none` and algorithm-confusion tokens are refused before any
//! signature check.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::keys::{AsymmetricKey, PreparedKey, PublicJwk};
use crate::model::User;

/// The JOSE `typ` of access tokens (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Why a token was refused. The messages are safe to show to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    #[error("the token's algorithm does not match its key")]
    WrongAlgorithm,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token is not an access token")]
    WrongType,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token's user no longer exists or is disabled")]
    UnknownUser,
}

/// Claims of an access token (RFC 9068 section 2.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id, never the username.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Empty (and absent) in a client's own token (`client_credentials`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred_username: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// The session (login) this token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 9068 requires `client_id`; Tessera's clients are public and
    /// unauthenticated, so it names the server's own default client.
    pub client_id: String,
}

impl AccessClaims {
    /// A client's token for itself (`client_credentials`): no session, no
    /// user, `sub` naming the client. A user's token always has a username.
    pub fn is_client_token(&self) -> bool {
        self.sid.is_none() && self.preferred_username.is_empty() && self.sub == self.client_id
    }
}

/// Issuer, audience and lifetimes.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: Option<String>,
    pub access_ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// The `client_id` claim of issued tokens.
    pub client_id: String,
}

/// A key that signs new tokens.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: SigningMaterial,
}

/// What a signing key signs with.
pub(crate) enum SigningMaterial {
    /// HS256: jsonwebtoken's HMAC.
    Secret(EncodingKey),
    /// EdDSA, ES256, RS256: a key pair parsed once (see [`PreparedKey`]).
    Private(Box<PreparedKey>),
}

impl SigningKey {
    /// A compact JWS of `claims` under `header` (RFC 7515 §7.1).
    pub(crate) fn sign<T: Serialize>(
        &self,
        header: &Header,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let key = match &self.key {
            SigningMaterial::Secret(secret) => return jsonwebtoken::encode(header, claims, secret),
            SigningMaterial::Private(key) => key,
        };
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut jws = engine.encode(serde_json::to_vec(header)?);
        jws.push('.');
        jws.push_str(&engine.encode(serde_json::to_vec(claims)?));
        let signature = key
            .sign(jws.as_bytes())
            .map_err(jsonwebtoken::errors::ErrorKind::Crypto)?;
        jws.push('.');
        jws.push_str(&engine.encode(signature));
        Ok(jws)
    }
}

/// A key that verifies tokens carrying its `kid`.
pub(crate) struct VerificationKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The active signing key and every key tokens may still be verified with.
pub struct TokenKeys {
    pub(crate) signing: SigningKey,
    pub(crate) verifying: HashMap<String, VerificationKey>,
    /// Public halves of the asymmetric keys, for the JWKS endpoint.
    public: Vec<PublicJwk>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("signing_kid", &self.signing.kid)
            .field("signing_alg", &self.signing.algorithm)
            .field("verifying_kids", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A stable, non-secret `kid` for an HS256 secret: a truncated SHA-256 of it
/// (64 bits of a hash reveal nothing usable about a 32-byte secret).
pub fn hs256_kid(secret: &[u8]) -> String {
    let digest = Sha256::digest([b"tessera-hs256-kid:".as_slice(), secret].concat());
    format!(
        "hs256-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..8])
    )
}

impl TokenKeys {
    /// A key set holding one shared HS256 secret.
    pub fn hs256(secret: &[u8]) -> Self {
        let kid = hs256_kid(secret);
        let mut verifying = HashMap::new();
        verifying.insert(
            kid.clone(),
            VerificationKey {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            },
        );
        Self {
            signing: SigningKey {
                kid,
                algorithm: Algorithm::HS256,
                key: SigningMaterial::Secret(EncodingKey::from_secret(secret)),
            },
            verifying,
            public: Vec::new(),
        }
    }

    /// A key set signing with `active` and also verifying with `others`
    /// (keys being rotated out, or in). Each verifies only its own algorithm.
    pub fn asymmetric(active: AsymmetricKey, others: Vec<AsymmetricKey>) -> Self {
        let mut verifying = HashMap::new();
        let mut public = Vec::new();
        let signing = SigningKey {
            kid: active.kid.clone(),
            algorithm: active.algorithm.jwt(),
            key: SigningMaterial::Private(Box::new(active.prepared)),
        };
        for key in std::iter::once((active.kid, active.algorithm, active.decoding, active.public))
            .chain(
                others
                    .into_iter()
                    .map(|k| (k.kid, k.algorithm, k.decoding, k.public)),
            )
        {
            let (kid, algorithm, decoding, jwk) = key;
            public.push(jwk);
            verifying.insert(
                kid,
                VerificationKey {
                    algorithm: algorithm.jwt(),
                    key: decoding,
                },
            );
        }
        Self {
            signing,
            verifying,
            public,
        }
    }

    /// The public keys to publish (empty for HS256).
    pub fn public_jwks(&self) -> &[PublicJwk] {
        &self.public
    }

    /// Every `kid` tokens are verified with.
    pub fn verifying_kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.verifying.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    /// Adds a verification-only HS256 secret (a previous key during rotation).
    pub fn with_previous_hs256(mut self, secret: &[u8]) -> Self {
        self.verifying.insert(
            hs256_kid(secret),
            VerificationKey {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            },
        );
        self
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing.kid
    }

    /// The header of `token` and the key its `kid` names, which must be of
    /// the header's algorithm (RFC 8725 §3.1): the first step of every
    /// verification, before any signature is checked.
    pub(crate) fn key_for(&self, token: &str) -> Result<(Header, &VerificationKey), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self.verifying.get(kid).ok_or(TokenError::UnknownKey)?;
        if header.alg != key.algorithm {
            return Err(TokenError::WrongAlgorithm);
        }
        Ok((header, key))
    }
}

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    pub claims: AccessClaims,
}

/// Signs and verifies access tokens.
#[derive(Debug)]
pub struct TokenIssuer {
    keys: TokenKeys,
    config: TokenConfig,
}

impl TokenIssuer {
    pub fn new(keys: TokenKeys, config: TokenConfig) -> Self {
        Self { keys, config }
    }

    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Signs an access token for `user` in session `sid`.
    pub fn issue(
        &self,
        user: &User,
        sid: Option<Uuid>,
        scope: Option<String>,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let client_id = self.config.client_id.clone();
        self.issue_for_client(user, sid, scope, client_id)
    }

    /// An access token whose `client_id` claim names `client_id` (RFC 9068 §2.2).
    pub fn issue_for_client(
        &self,
        user: &User,
        sid: Option<Uuid>,
        scope: Option<String>,
        client_id: String,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        self.sign_claims(
            user.id.to_string(),
            user.username.clone(),
            sid,
            scope,
            client_id,
        )
    }

    /// A client's token for itself (`client_credentials`, RFC 9068 §2.2:
    /// `sub` is the client id; no user, no session).
    pub fn issue_to_client(
        &self,
        client_id: &str,
        scope: Option<String>,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        self.sign_claims(
            client_id.to_owned(),
            String::new(),
            None,
            scope,
            client_id.to_owned(),
        )
    }

    fn sign_claims(
        &self,
        sub: String,
        preferred_username: String,
        sid: Option<Uuid>,
        scope: Option<String>,
        client_id: String,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let ttl = self.config.access_ttl.as_secs();
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            sub,
            aud: self.config.audience.clone(),
            preferred_username,
            iat: now,
            nbf: now,
            exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            jti: Uuid::new_v4().to_string(),
            sid: sid.map(|s| s.to_string()),
            scope,
            client_id,
        };
        let mut header = Header::new(self.keys.signing.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.keys.signing.kid.clone());
        let token = self.keys.signing.sign(&header, &claims)?;
        Ok(IssuedToken {
            token,
            expires_in: ttl,
            claims,
        })
    }

    /// Verifies signature, `kid`/`alg` pairing, `typ`, issuer, audience and
    /// validity window. Does not look at sessions or users: that is the
    /// service's job.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let (header, key) = self.keys.key_for(token)?;
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE))
        {
            return Err(TokenError::WrongType);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        let mut required = vec!["exp", "nbf", "iat", "iss", "sub"];
        match &self.config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation).map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                match err.kind() {
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                    ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                    ErrorKind::InvalidAudience => TokenError::WrongAudience,
                    ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                    _ => TokenError::Malformed,
                }
            })?;
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn config() -> TokenConfig {
        TokenConfig {
            issuer: "http://issuer.test".into(),
            audience: None,
            access_ttl: Duration::from_secs(900),
            leeway: Duration::from_secs(5),
            client_id: "tessera".into(),
        }
    }

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

    fn encode(
        claims: &AccessClaims,
        kid: Option<&str>,
        typ: Option<&str>,
        secret: &[u8],
    ) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn round_trip_carries_the_profile_claims() {
        let issuer = TokenIssuer::new(
            TokenKeys::hs256(b"0123456789abcdef0123456789abcdef"),
            config(),
        );
        let u = user();
        let sid = Uuid::new_v4();
        let issued = issuer.issue(&u, Some(sid), None).unwrap();
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert!(header.kid.unwrap().starts_with("hs256-"));
        let claims = issuer.verify(&issued.token).unwrap();
        assert_eq!(claims.sub, u.id.to_string());
        assert_eq!(claims.preferred_username, "Alice");
        assert_eq!(claims.sid, Some(sid.to_string()));
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn refuses_tampering_other_keys_types_and_times() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let issuer = TokenIssuer::new(TokenKeys::hs256(secret), config());
        let good = issuer.issue(&user(), None, None).unwrap();
        let kid = issuer.keys.signing_kid().to_owned();

        // A flipped signature character.
        let mut bad = good.token.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(issuer.verify(&bad), Err(TokenError::BadSignature));

        // Same kid, different secret.
        let forged = encode(
            &good.claims,
            Some(&kid),
            Some("at+jwt"),
            b"another secret another secret!!!",
        );
        assert_eq!(issuer.verify(&forged), Err(TokenError::BadSignature));

        assert_eq!(
            issuer.verify(&encode(&good.claims, Some("nope"), Some("at+jwt"), secret)),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            issuer.verify(&encode(&good.claims, Some(&kid), Some("JWT"), secret)),
            Err(TokenError::WrongType)
        );

        let now = Utc::now().timestamp();
        let expired = AccessClaims {
            iat: now - 100,
            nbf: now - 100,
            exp: now - 60,
            ..good.claims.clone()
        };
        assert_eq!(
            issuer.verify(&encode(&expired, Some(&kid), Some("at+jwt"), secret)),
            Err(TokenError::Expired)
        );
        let future = AccessClaims {
            nbf: now + 600,
            exp: now + 1200,
            ..good.claims.clone()
        };
        assert_eq!(
            issuer.verify(&encode(&future, Some(&kid), Some("at+jwt"), secret)),
            Err(TokenError::NotYetValid)
        );
        let foreign = AccessClaims {
            iss: "http://evil.test".into(),
            ..good.claims.clone()
        };
        assert_eq!(
            issuer.verify(&encode(&foreign, Some(&kid), Some("at+jwt"), secret)),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let issuer = TokenIssuer::new(
            TokenKeys::hs256(b"0123456789abcdef0123456789abcdef"),
            config(),
        );
        let good = issuer.issue(&user(), None, None).unwrap();
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(format!(
            r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
            issuer.keys.signing_kid()
        ));
        let payload = engine.encode(serde_json::to_vec(&good.claims).unwrap());
        assert!(issuer.verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn asymmetric_keys_sign_and_verify_and_refuse_algorithm_confusion() {
        use crate::keys::{generate_private_key_pem, parse_private_key_pem, SigningAlgorithm};
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
        ] {
            let pem = generate_private_key_pem(alg).unwrap();
            let issuer = TokenIssuer::new(
                TokenKeys::asymmetric(parse_private_key_pem("active", &pem).unwrap(), vec![]),
                config(),
            );
            let issued = issuer.issue(&user(), None, None).unwrap();
            let header = jsonwebtoken::decode_header(&issued.token).unwrap();
            assert_eq!(header.alg, alg.jwt());
            assert_eq!(header.kid.as_deref(), Some("active"));
            assert!(issuer.verify(&issued.token).is_ok(), "{alg}");
            assert_eq!(issuer.keys().public_jwks().len(), 1);

            // HS256 "signed" with the public key material under the same kid:
            // the classic confusion attack. The kid's algorithm decides.
            let jwk = serde_json::to_string(&issuer.keys().public_jwks()[0]).unwrap();
            let forged = encode(
                &issued.claims,
                Some("active"),
                Some("at+jwt"),
                jwk.as_bytes(),
            );
            assert_eq!(
                issuer.verify(&forged),
                Err(TokenError::WrongAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn rotation_between_asymmetric_keys_keeps_old_tokens_valid() {
        use crate::keys::{generate_private_key_pem, parse_private_key_pem, SigningAlgorithm};
        let old_pem = generate_private_key_pem(SigningAlgorithm::EdDSA).unwrap();
        let new_pem = generate_private_key_pem(SigningAlgorithm::ES256).unwrap();
        let before = TokenIssuer::new(
            TokenKeys::asymmetric(parse_private_key_pem("old", &old_pem).unwrap(), vec![]),
            config(),
        );
        let old_token = before.issue(&user(), None, None).unwrap().token;
        let after = TokenIssuer::new(
            TokenKeys::asymmetric(
                parse_private_key_pem("new", &new_pem).unwrap(),
                vec![parse_private_key_pem("old", &old_pem).unwrap()],
            ),
            config(),
        );
        assert!(after.verify(&old_token).is_ok());
        let fresh = after.issue(&user(), None, None).unwrap().token;
        assert_eq!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
            Some("new")
        );
        assert_eq!(after.keys().verifying_kids(), ["new", "old"]);
    }

    #[test]
    fn previous_keys_still_verify_during_rotation() {
        let old = TokenIssuer::new(
            TokenKeys::hs256(b"old secret old secret old secret"),
            config(),
        );
        let token = old.issue(&user(), None, None).unwrap().token;
        let rotated = TokenIssuer::new(
            TokenKeys::hs256(b"new secret new secret new secret")
                .with_previous_hs256(b"old secret old secret old secret"),
            config(),
        );
        assert!(rotated.verify(&token).is_ok());
        let fresh = rotated.issue(&user(), None, None).unwrap().token;
        assert_ne!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid,
            jsonwebtoken::decode_header(&token).unwrap().kid
        );
    }
}
