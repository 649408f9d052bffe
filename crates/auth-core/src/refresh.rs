//! Opaque tokens: 256 random bits, stored only as SHA-256. Refresh tokens,
//! authorization codes and browser-session cookies are all of this kind.
//!
//! For the reuse grace window the successor of a used token must be
//! recoverable, but never stored in the clear. It is sealed with a one-time
//! pad derived from the *presented* token: `SHA-256("tessera-refresh-seal:" ||
//! token)`. The store only knows `SHA-256(token)`, which reveals nothing of
//! the pad, so only a caller holding the old token can unseal the successor;
//! each pad seals exactly one 32-byte value. The unsealed value is checked
//! against the stored successor digest, so tampering is detected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::TokenDigest;

const TOKEN_BYTES: usize = 32;
const SEAL_CONTEXT: &[u8] = b"tessera-refresh-seal:";

/// A random token as handed out. `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(String);

/// A refresh token (RFC 6749 §1.5).
pub type RefreshToken = OpaqueToken;

impl std::fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueToken(<redacted>)")
    }
}

impl OpaqueToken {
    /// A fresh token from the OS's CSPRNG.
    pub fn generate() -> Self {
        let mut raw = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        Self(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Wraps what a client presented (any string: unknown ones simply match nothing).
    pub fn from_presented(value: &str) -> Self {
        Self(value.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps and looks tokens up by.
    pub fn digest(&self) -> TokenDigest {
        Sha256::digest(self.0.as_bytes()).into()
    }

    fn pad(&self) -> [u8; TOKEN_BYTES] {
        Sha256::new()
            .chain_update(SEAL_CONTEXT)
            .chain_update(self.0.as_bytes())
            .finalize()
            .into()
    }

    /// Seals `successor` so only a holder of `self` can recover it.
    pub fn seal(&self, successor: &RefreshToken) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(&successor.0).ok()?;
        if raw.len() != TOKEN_BYTES {
            return None;
        }
        Some(raw.iter().zip(self.pad()).map(|(a, b)| a ^ b).collect())
    }

    /// Recovers the successor sealed by [`seal`](Self::seal) and checks it
    /// against the digest the store recorded (constant time).
    pub fn unseal(&self, sealed: &[u8], expected: &TokenDigest) -> Option<RefreshToken> {
        if sealed.len() != TOKEN_BYTES {
            return None;
        }
        let raw: Vec<u8> = sealed.iter().zip(self.pad()).map(|(a, b)| a ^ b).collect();
        let token = OpaqueToken(URL_SAFE_NO_PAD.encode(raw));
        bool::from(token.digest().ct_eq(expected)).then_some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digests_stable() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(
            a.digest(),
            RefreshToken::from_presented(a.expose()).digest()
        );
        assert_eq!(format!("{a:?}"), "OpaqueToken(<redacted>)");
    }

    #[test]
    fn sealed_successors_open_only_with_the_old_token() {
        let old = RefreshToken::generate();
        let next = RefreshToken::generate();
        let sealed = old.seal(&next).unwrap();
        assert_ne!(sealed, URL_SAFE_NO_PAD.decode(next.expose()).unwrap());
        assert_eq!(old.unseal(&sealed, &next.digest()), Some(next.clone()));
        let stranger = RefreshToken::generate();
        assert_eq!(stranger.unseal(&sealed, &next.digest()), None);
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(old.unseal(&tampered, &next.digest()), None);
    }
}
