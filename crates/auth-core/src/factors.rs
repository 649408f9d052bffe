//! Second factors: authenticator apps (TOTP, RFC 6238), recovery codes and
//! passkeys (WebAuthn), and the short-lived ceremony records that let any
//! replica finish what another started.
//!
//! What is stored, and why it is safe to store:
//! * a TOTP secret only sealed (ChaCha20-Poly1305, key from configuration,
//!   the factor's id as associated data, so a sealed secret copied onto
//!   another row does not open);
//! * the last accepted TOTP time step, advanced by a conditional update, so
//!   a code is accepted at most once even by two replicas at the same time;
//! * recovery codes only as SHA-256 digests (they are 60 random bits, not
//!   passwords), each deleted when used;
//! * a passkey's public key and signature counter (nothing secret).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::model::TokenDigest;

/// RFC 6238 parameters every authenticator app understands.
pub const TOTP_DIGITS: u8 = 6;
pub const TOTP_PERIOD: u64 = 30;
/// Steps either side of now that are accepted (clock drift, slow typing).
pub const TOTP_SKEW_STEPS: i64 = 1;
/// Bytes of a new TOTP secret (RFC 4226 §4 recommends 160 bits).
const TOTP_SECRET_BYTES: usize = 20;
/// How many recovery codes a person gets at a time.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// What kind of second factor a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// An authenticator app (TOTP). At most one per account.
    Totp,
    /// A WebAuthn credential (passkey or security key).
    Passkey,
}

impl FactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Passkey => "passkey",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "totp" => Some(Self::Totp),
            "passkey" => Some(Self::Passkey),
            _ => None,
        }
    }
}

/// One enrolled second factor.
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: FactorKind,
    /// Shown on the account page ("Authenticator app", a passkey's name).
    pub name: String,
    /// TOTP: the sealed secret. Passkey: the credential (JSON).
    pub data: String,
    /// Passkey: its credential ID (base64url), unique across accounts.
    pub credential_id: Option<String>,
    /// TOTP: the last time step a code was accepted for (0: none yet).
    pub last_step: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("credential_id", &self.credential_id)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// What a short-lived ceremony record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeremonyKind {
    /// The password was right; the second factor is still to come.
    SecondFactor,
    /// An authenticator app shown but not yet confirmed by a first code.
    TotpEnrolment,
    /// A passkey registration under way (WebAuthn state).
    PasskeyRegistration,
    /// A passkey sign-in under way (WebAuthn state).
    PasskeyAuthentication,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecondFactor => "second_factor",
            Self::TotpEnrolment => "totp_enrolment",
            Self::PasskeyRegistration => "passkey_registration",
            Self::PasskeyAuthentication => "passkey_authentication",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::SecondFactor,
            Self::TotpEnrolment,
            Self::PasskeyRegistration,
            Self::PasskeyAuthentication,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A ceremony in progress, named by the digest of a random token the
/// browser holds (a cookie or a form field). Kept in the store so that any
/// replica finishes it; single use where it matters (`take_ceremony`).
#[derive(Clone, PartialEq, Eq)]
pub struct Ceremony {
    pub digest: TokenDigest,
    pub kind: CeremonyKind,
    pub user_id: Option<Uuid>,
    /// What the next step needs (JSON; may hold a sealed secret).
    pub data: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Ceremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ceremony")
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How long a ceremony may take.
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);

/// The key that seals TOTP secrets at rest, derived (HKDF-SHA256) from the
/// configured `factors.encryption_key`. `Debug` shows nothing.
pub struct FactorKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for FactorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FactorKey(<redacted>)")
    }
}

/// Prefix of sealed values: names the format, so the key can be rotated.
const SEALED_PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 12;

impl FactorKey {
    pub fn from_secret(secret: &[u8]) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tessera-factor-key");
        let prk = salt.extract(secret);
        // `expand` fails only for an output longer than 255 hash lengths;
        // 32 bytes never is.
        let key = match prk.expand(&[b"v1"], &CHACHA20_POLY1305) {
            Ok(okm) => UnboundKey::from(okm),
            Err(_) => unreachable_key(),
        };
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// Seals `plain`, bound to `context` (which must be given to open it).
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut buffer = plain.to_vec();
        // Sealing with a valid key and a fresh nonce cannot fail.
        let _ = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut buffer,
        );
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The plain bytes, or `None` when the value was not sealed by this key
    /// for this context (tampered, copied, or another key).
    pub fn open(&self, context: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(SEALED_PREFIX)?)
            .ok()?;
        if raw.len() < NONCE_BYTES + aead::MAX_TAG_LEN {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_BYTES);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

fn unreachable_key() -> UnboundKey {
    // A fixed, never-used key: only reachable if ring's HKDF broke its contract.
    #[allow(clippy::unwrap_used)]
    UnboundKey::new(&CHACHA20_POLY1305, &[0u8; 32]).unwrap()
}

/// A new TOTP secret: random bytes.
pub fn new_totp_secret() -> Vec<u8> {
    let mut secret = vec![0u8; TOTP_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(TOTP_DIGITS)
        .with_step_duration(TOTP_PERIOD)
        .with_secret(secret.to_vec())
        .with_issuer(Some(otpauth_label(issuer)))
        .with_account_name(otpauth_label(account))
        .build()
        .ok()
}

/// Key URI labels may not hold `:` (it separates issuer and account).
fn otpauth_label(text: &str) -> String {
    let cleaned: String = text.chars().filter(|c| *c != ':').collect();
    if cleaned.trim().is_empty() {
        "Tessera".to_owned()
    } else {
        cleaned
    }
}

/// The `otpauth://totp/...` URI an authenticator app scans.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Option<String> {
    totp(secret, issuer, account)?.to_url().ok()
}

/// The secret in base32, for typing into an app by hand.
pub fn totp_secret_base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec()).to_base32()
}

/// The time step of `now`.
pub fn totp_step(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(TOTP_PERIOD as i64)
}

/// The step (within ±[`TOTP_SKEW_STEPS`] of `now`) whose code `code` is,
/// compared in constant time; `None` when it matches none. Whether that step
/// is still unused is the store's decision.
pub fn totp_matching_step(secret: &[u8], code: &str, now: DateTime<Utc>) -> Option<i64> {
    let code = normalize_code(code);
    if code.len() != usize::from(TOTP_DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, "Tessera", "account")?;
    let current = totp_step(now);
    let mut found = None;
    for step in (current - TOTP_SKEW_STEPS)..=(current + TOTP_SKEW_STEPS) {
        let Ok(time) = u64::try_from(step * TOTP_PERIOD as i64) else {
            continue;
        };
        let expected = totp.generate(time).to_string();
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// What a person typed, without the spaces and dashes apps and printouts add.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Alphabet of recovery codes: no 0/o, 1/l/i to misread.
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const RECOVERY_CODE_CHARS: usize = 12;

/// A fresh set of recovery codes, formatted `xxxx-xxxx-xxxx` (about 59
/// random bits each), with the digests the store keeps.
pub fn new_recovery_codes() -> (Vec<String>, Vec<TokenDigest>) {
    let mut codes = Vec::with_capacity(RECOVERY_CODE_COUNT);
    let mut rng = rand::rngs::OsRng;
    for _ in 0..RECOVERY_CODE_COUNT {
        let raw: String = (0..RECOVERY_CODE_CHARS)
            .map(|_| {
                let i = (rng.next_u32() as usize) % RECOVERY_ALPHABET.len();
                char::from(RECOVERY_ALPHABET[i])
            })
            .collect();
        codes.push(format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12]));
    }
    let digests = codes.iter().map(|c| recovery_code_digest(c)).collect();
    (codes, digests)
}

/// What the store keeps of a recovery code (typed with or without dashes,
/// in either case).
pub fn recovery_code_digest(code: &str) -> TokenDigest {
    Sha256::new()
        .chain_update(b"tessera-recovery:")
        .chain_update(normalize_code(code).as_bytes())
        .finalize()
        .into()
}

/// Whether what was typed looks like a recovery code rather than a TOTP code.
pub fn looks_like_recovery_code(code: &str) -> bool {
    normalize_code(code).len() == RECOVERY_CODE_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let key = FactorKey::from_secret(b"a-configured-key-of-32-bytes-or-more");
        let sealed = key.seal(b"factor-1", b"the secret");
        assert!(!sealed.contains("the secret"));
        assert_eq!(
            key.open(b"factor-1", &sealed).as_deref(),
            Some(&b"the secret"[..])
        );
        assert_eq!(key.open(b"factor-2", &sealed), None, "bound to its row");
        let other = FactorKey::from_secret(b"another-configured-key-of-32-bytes");
        assert_eq!(other.open(b"factor-1", &sealed), None);
        assert_ne!(sealed, key.seal(b"factor-1", b"the secret"), "fresh nonce");
        assert_eq!(key.open(b"factor-1", "v1.AAAA"), None);
    }

    /// RFC 6238 Appendix B (SHA-1, 8 digits there; the last 6 here).
    #[test]
    fn codes_match_the_rfc_test_vectors_within_one_step() {
        let secret = b"12345678901234567890";
        let at = |t: i64| DateTime::from_timestamp(t, 0).unwrap_or_default();
        assert_eq!(totp_matching_step(secret, "287082", at(59)), Some(1));
        assert_eq!(
            totp_matching_step(secret, "081804", at(1_111_111_109)),
            Some(37_037_036)
        );
        // One step late or early is accepted; two are not.
        assert_eq!(totp_matching_step(secret, "287 082", at(89)), Some(1));
        assert_eq!(totp_matching_step(secret, "287082", at(29)), Some(1));
        assert_eq!(totp_matching_step(secret, "287082", at(120)), None);
        assert_eq!(totp_matching_step(secret, "28708", at(59)), None);
        assert_eq!(totp_matching_step(secret, "abcdef", at(59)), None);
    }

    #[test]
    fn the_uri_names_issuer_account_and_secret() {
        let uri = otpauth_uri(b"12345678901234567890", "Acme: ID", "ada").unwrap_or_default();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("ada"), "{uri}");
        assert!(!uri.contains("Acme:"), "{uri}");
    }

    #[test]
    fn recovery_codes_are_distinct_and_typed_loosely() {
        let (codes, digests) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODE_COUNT);
        assert!(looks_like_recovery_code(&codes[0]));
        assert_eq!(
            recovery_code_digest(&codes[0].to_uppercase().replace('-', " ")),
            digests[0]
        );
        assert!(!looks_like_recovery_code("123456"));
    }
}
