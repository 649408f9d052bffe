//! Signing keys: algorithms, PEM parsing, generation, public JWKs.
//!
//! Private keys are PKCS#8 PEM files, one per `kid`. For each we derive the
//! public half once, to verify tokens and to publish at the JWKS endpoint.

use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;

/// The access-token signing algorithms Tessera supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// HMAC with SHA-256 and a shared secret (verifiers need the secret).
    HS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::HS256 => "HS256",
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::RS256 => "RS256",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::HS256 => Algorithm::HS256,
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
            SigningAlgorithm::ES256 => Algorithm::ES256,
            SigningAlgorithm::RS256 => Algorithm::RS256,
        }
    }

    pub fn is_asymmetric(self) -> bool {
        self != SigningAlgorithm::HS256
    }
}

impl FromStr for SigningAlgorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s.to_ascii_uppercase().as_str() {
            "HS256" => Ok(SigningAlgorithm::HS256),
            "EDDSA" | "ED25519" => Ok(SigningAlgorithm::EdDSA),
            "ES256" => Ok(SigningAlgorithm::ES256),
            "RS256" => Ok(SigningAlgorithm::RS256),
            _ => Err(KeyError::UnsupportedAlgorithm(s.to_owned())),
        }
    }
}

/// Configuration spells algorithms as JWS does (`HS256`, `EdDSA`, ...),
/// case-insensitively; parsed once, when the configuration is read.
impl<'de> serde::Deserialize<'de> for SigningAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for SigningAlgorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported algorithm {0:?} (supported: HS256, EdDSA, ES256, RS256)")]
    UnsupportedAlgorithm(String),
    #[error("key {kid}: not a PKCS#8 Ed25519, P-256 or RSA private key")]
    UnrecognisedKey { kid: String },
    #[error("key {kid}: {reason}")]
    Invalid { kid: String, reason: String },
    #[error("cannot generate a key: {0}")]
    Generation(String),
}

/// A public verification key as published in a JWK Set (RFC 7517).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub key_use: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A private key parsed once, for signing. jsonwebtoken 9 parses the
/// PKCS#8 document again on every signature, and for RSA that parse costs
/// more than the signature itself; signing with a key parsed at start-up
/// makes RS256 ID tokens several times cheaper.
pub(crate) enum PreparedKey {
    Ed25519(ring::signature::Ed25519KeyPair),
    P256(ring::signature::EcdsaKeyPair),
    Rsa(ring::signature::RsaKeyPair),
}

impl PreparedKey {
    /// The JWS signature of `message` (RFC 7518 §3: PKCS#1 v1.5 for RS256,
    /// the fixed-width `R || S` for ES256, RFC 8037 for EdDSA).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        let rng = ring::rand::SystemRandom::new();
        match self {
            PreparedKey::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
            PreparedKey::P256(key) => Ok(key.sign(&rng, message)?.as_ref().to_vec()),
            PreparedKey::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut signature,
                )?;
                Ok(signature)
            }
        }
    }
}

/// A parsed private key with everything derived from it.
pub struct AsymmetricKey {
    pub(crate) kid: String,
    pub(crate) algorithm: SigningAlgorithm,
    pub(crate) prepared: PreparedKey,
    pub(crate) decoding: DecodingKey,
    pub(crate) public: PublicJwk,
}

impl std::fmt::Debug for AsymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsymmetricKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl AsymmetricKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwk(kid: &str, alg: SigningAlgorithm, kty: &str) -> PublicJwk {
    PublicJwk {
        kty: kty.into(),
        kid: kid.into(),
        alg: alg.as_str().into(),
        key_use: "sig".into(),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
    }
}

/// Parses a PKCS#8 PEM private key (Ed25519, P-256 or RSA); the algorithm
/// follows from the key type.
pub fn parse_private_key_pem(kid: &str, pem: &str) -> Result<AsymmetricKey, KeyError> {
    let invalid = |reason: jsonwebtoken::errors::Error| KeyError::Invalid {
        kid: kid.to_owned(),
        reason: reason.to_string(),
    };
    let unusable = |reason: &dyn std::fmt::Display| KeyError::Invalid {
        kid: kid.to_owned(),
        reason: reason.to_string(),
    };
    if let Ok(key) =
        <ed25519_dalek::SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
    {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let der = key.to_pkcs8_der().map_err(|e| unusable(&e))?;
        let prepared = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.as_bytes())
            .map_err(|e| unusable(&e))?;
        let x = b64(key.verifying_key().as_bytes());
        let mut public = jwk(kid, SigningAlgorithm::EdDSA, "OKP");
        public.crv = Some("Ed25519".into());
        public.x = Some(x.clone());
        return Ok(AsymmetricKey {
            kid: kid.into(),
            algorithm: SigningAlgorithm::EdDSA,
            prepared: PreparedKey::Ed25519(prepared),
            decoding: DecodingKey::from_ed_components(&x).map_err(invalid)?,
            public,
        });
    }
    if let Ok(key) = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem) {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let der = key.to_pkcs8_der().map_err(|e| unusable(&e))?;
        let prepared = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der.as_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| unusable(&e))?;
        let point = key.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(KeyError::UnrecognisedKey { kid: kid.into() });
        };
        let (x, y) = (b64(x), b64(y));
        let mut public = jwk(kid, SigningAlgorithm::ES256, "EC");
        public.crv = Some("P-256".into());
        public.x = Some(x.clone());
        public.y = Some(y.clone());
        return Ok(AsymmetricKey {
            kid: kid.into(),
            algorithm: SigningAlgorithm::ES256,
            prepared: PreparedKey::P256(prepared),
            decoding: DecodingKey::from_ec_components(&x, &y).map_err(invalid)?,
            public,
        });
    }
    if let Ok(key) = <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem) {
        use rsa::pkcs8::EncodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let der = key.to_pkcs8_der().map_err(|e| unusable(&e))?;
        let prepared =
            ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(|e| unusable(&e))?;
        let (n, e) = (b64(&key.n().to_bytes_be()), b64(&key.e().to_bytes_be()));
        let mut public = jwk(kid, SigningAlgorithm::RS256, "RSA");
        public.n = Some(n.clone());
        public.e = Some(e.clone());
        return Ok(AsymmetricKey {
            kid: kid.into(),
            algorithm: SigningAlgorithm::RS256,
            prepared: PreparedKey::Rsa(prepared),
            decoding: DecodingKey::from_rsa_components(&n, &e).map_err(invalid)?,
            public,
        });
    }
    Err(KeyError::UnrecognisedKey { kid: kid.into() })
}

/// A new private key for `alg`, as PKCS#8 PEM.
pub fn generate_private_key_pem(alg: SigningAlgorithm) -> Result<String, KeyError> {
    use rand::rngs::OsRng;
    let failed = |e: &dyn std::fmt::Display| KeyError::Generation(e.to_string());
    match alg {
        SigningAlgorithm::HS256 => Err(KeyError::Generation(
            "HS256 uses tokens.secret, not a key file".into(),
        )),
        SigningAlgorithm::EdDSA => {
            use ed25519_dalek::pkcs8::EncodePrivateKey;
            let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
            key.to_pkcs8_pem(Default::default())
                .map(|pem| pem.to_string())
                .map_err(|e| failed(&e))
        }
        SigningAlgorithm::ES256 => {
            use p256::pkcs8::EncodePrivateKey;
            p256::SecretKey::random(&mut OsRng)
                .to_pkcs8_pem(Default::default())
                .map(|pem| pem.to_string())
                .map_err(|e| failed(&e))
        }
        SigningAlgorithm::RS256 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| failed(&e))?;
            key.to_pkcs8_pem(Default::default())
                .map(|pem| pem.to_string())
                .map_err(|e| failed(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_with_their_algorithm() {
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
        ] {
            let pem = generate_private_key_pem(alg).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let key = parse_private_key_pem("k1", &pem).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.public_jwk().alg, alg.as_str());
            assert_eq!(key.public_jwk().key_use, "sig");
            assert_eq!(key.public_jwk().kid, "k1");
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_private_key_pem("k", "not a key").is_err());
        assert!("none".parse::<SigningAlgorithm>().is_err());
        assert_eq!(
            "eddsa".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::EdDSA
        );
    }
}
