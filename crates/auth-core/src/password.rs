//! Argon2id hashing, kept off the async runtime and bounded.
//!
//! Hashing is deliberately expensive (19 MiB and ~tens of ms per call), so
//! it runs on tokio's blocking pool behind a semaphore with one permit per
//! CPU and a bounded wait queue. Past the queue, callers get
//! [`AuthError::Overloaded`] at once instead of piling up without end, and
//! memory stays at roughly `memory_kib x permits`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::error::AuthError;
use crate::validation::Password;

/// Hashing cost and concurrency. Defaults are OWASP's Argon2id baseline:
/// m = 19 MiB, t = 2, p = 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HashingConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes run at once; `0` means one per CPU.
    pub max_concurrent: usize,
    /// Requests allowed to wait for a permit before new ones are shed.
    pub max_queue: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 0,
            max_queue: 64,
        }
    }
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash used other parameters than the configured ones and
    /// should be replaced now that we know the password.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords. Cheap to clone (shared state).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    permits: Semaphore,
    permit_count: usize,
    /// Calls admitted (running or waiting).
    admitted: AtomicUsize,
    max_admitted: usize,
    /// A real hash of a random password with the configured cost: verifying
    /// unknown users against it makes their timing match real ones.
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("permits", &self.inner.permit_count)
            .finish_non_exhaustive()
    }
}

/// Decrements the admitted count however the call ends (even if cancelled).
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    pub fn new(config: &HashingConfig) -> Result<Self, AuthError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| AuthError::Internal(format!("invalid argon2 parameters: {e}")))?;
        let permit_count = if config.max_concurrent == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.max_concurrent
        };
        let dummy_password: String = {
            use rand::RngCore;
            let mut bytes = [0u8; 24];
            rand::thread_rng().fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let dummy_hash = hash_blocking(&params, &dummy_password)?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                permits: Semaphore::new(permit_count),
                permit_count,
                admitted: AtomicUsize::new(0),
                max_admitted: permit_count + config.max_queue,
                dummy_hash,
            }),
        })
    }

    /// Calls waiting for a hashing permit right now (for metrics).
    pub fn queue_depth(&self) -> usize {
        let admitted = self.inner.admitted.load(Ordering::Acquire);
        let running = self.inner.permit_count - self.inner.permits.available_permits();
        admitted.saturating_sub(running)
    }

    /// Hashes a new password with the configured parameters.
    pub async fn hash(&self, password: &Password) -> Result<String, AuthError> {
        let params = self.inner.params.clone();
        let password = password.expose().to_owned();
        self.run(move || hash_blocking(&params, &password)).await?
    }

    /// Checks `candidate` against `stored`; with no stored hash (unknown
    /// user) it checks against the dummy hash and reports no match, taking
    /// the same time as a real check.
    pub async fn verify(
        &self,
        stored: Option<&str>,
        candidate: &str,
    ) -> Result<Verification, AuthError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.inner.dummy_hash).to_owned();
        let candidate = candidate.to_owned();
        let params = self.inner.params.clone();
        let verification = self
            .run(move || verify_blocking(&params, &hash, &candidate))
            .await?;
        Ok(Verification {
            matches: known && verification.matches,
            needs_rehash: known && verification.needs_rehash,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let inner = &self.inner;
        let before = inner.admitted.fetch_add(1, Ordering::AcqRel);
        let _admission = Admission(&inner.admitted);
        if before >= inner.max_admitted {
            return Err(AuthError::Overloaded);
        }
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| AuthError::Internal("hashing semaphore closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, AuthError> {
    use argon2::PasswordHasher as _;
    let salt = SaltString::generate(&mut OsRng);
    argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Internal(format!("hashing failed: {e}")))
}

fn verify_blocking(params: &Params, stored: &str, candidate: &str) -> Verification {
    let Ok(parsed) = PasswordHash::new(stored) else {
        // A corrupt stored hash never matches; it is replaced on the next set-password.
        return Verification {
            matches: false,
            needs_rehash: false,
        };
    };
    // The stored hash carries its own parameters; verification uses them.
    let matches = Argon2::default()
        .verify_password(candidate.as_bytes(), &parsed)
        .is_ok();
    Verification {
        matches,
        needs_rehash: matches && !uses_params(&parsed, params),
    }
}

/// Whether a stored hash was made by Argon2id v19 with exactly `params`.
fn uses_params(hash: &PasswordHash<'_>, params: &Params) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(Version::V0x13.into())
    {
        return false;
    }
    match Params::try_from(hash) {
        Ok(stored) => {
            stored.m_cost() == params.m_cost()
                && stored.t_cost() == params.t_cost()
                && stored.p_cost() == params.p_cost()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashingConfig {
        HashingConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
            max_queue: 0,
        }
    }

    fn pw(p: &str) -> Password {
        Password::parse("password", p, "someone", "someone@x.org").unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        let hash = hasher.hash(&pw("correct horse battery")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        let ok = hasher
            .verify(Some(&hash), "correct horse battery")
            .await
            .unwrap();
        assert!(ok.matches && !ok.needs_rehash);
        let bad = hasher.verify(Some(&hash), "wrong horse").await.unwrap();
        assert!(!bad.matches);
    }

    #[tokio::test]
    async fn unknown_user_never_matches_even_with_the_dummy_password() {
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        let v = hasher.verify(None, "anything at all").await.unwrap();
        assert!(!v.matches);
    }

    #[tokio::test]
    async fn hashes_with_other_parameters_are_flagged_for_rehash() {
        let old = PasswordHasher::new(&HashingConfig {
            memory_kib: 2048,
            ..cheap()
        })
        .unwrap();
        let hash = old.hash(&pw("correct horse battery")).await.unwrap();
        let current = PasswordHasher::new(&cheap()).unwrap();
        let v = current
            .verify(Some(&hash), "correct horse battery")
            .await
            .unwrap();
        assert!(v.matches && v.needs_rehash);
    }

    #[tokio::test]
    async fn full_queue_sheds_instead_of_waiting() {
        let hasher = PasswordHasher::new(&HashingConfig {
            memory_kib: 8 * 1024,
            iterations: 3,
            ..cheap()
        })
        .unwrap();
        // One permit, no queue: of many simultaneous calls some must be shed.
        let calls = (0..8).map(|_| {
            let h = hasher.clone();
            tokio::spawn(async move { h.verify(None, "x").await })
        });
        let calls: Vec<_> = calls.collect();
        let mut shed = 0;
        for call in calls {
            if matches!(call.await.unwrap(), Err(AuthError::Overloaded)) {
                shed += 1;
            }
        }
        assert!(shed > 0, "no call was shed");
        assert_eq!(hasher.queue_depth(), 0);
    }
}
