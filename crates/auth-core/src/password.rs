//! Argon2id hashing, kept off the async runtime and bounded.
//!
//! Hashing is deliberately expensive (19 MiB and tens of milliseconds per
//! call), so it runs on a small pool of dedicated threads, one per CPU, fed
//! through a bounded queue. Past the queue, callers get
//! [`AuthError::Overloaded`] at once instead of piling up without end.
//!
//! Memory stays at `memory_kib x threads`: each thread owns one Argon2
//! work area, allocated once and reused for every hash. Allocating 19 MiB
//! per hash instead (what `argon2`'s convenience API does) lets glibc's
//! dynamic mmap threshold keep the freed blocks: resident memory grew by
//! about 10 MiB per hash, to 230 MiB after 20 registrations (measured).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

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
    /// Hashing threads; `0` means one per CPU.
    pub max_concurrent: usize,
    /// Requests allowed to wait for a hashing thread before new ones are shed.
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

/// A hashing thread's reusable Argon2 work area.
#[derive(Default)]
struct WorkArea(Vec<Block>);

impl WorkArea {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.0.len() < needed {
            self.0.resize(needed, Block::default());
        }
        &mut self.0[..needed]
    }
}

type Job = Box<dyn FnOnce(&mut WorkArea) + Send>;

/// Hashes and verifies passwords. Cheap to clone (shared state); the
/// hashing threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    jobs: SyncSender<Job>,
    threads: usize,
    /// Most jobs in flight at once: one per thread plus the wait queue.
    capacity: usize,
    /// Jobs submitted and not finished (queued or running).
    in_flight: Arc<AtomicUsize>,
    /// Jobs a thread is working on.
    running: Arc<AtomicUsize>,
    /// A hash no password matches, with the configured cost: verifying
    /// unknown users against it makes their timing match real ones.
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("threads", &self.inner.threads)
            .finish_non_exhaustive()
    }
}

/// Decrements a counter however the scope ends.
struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn worker(jobs: Arc<Mutex<Receiver<Job>>>, running: Arc<AtomicUsize>) {
    let mut area = WorkArea::default();
    loop {
        let next = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else {
            return; // every sender is gone: the hasher was dropped
        };
        running.fetch_add(1, Ordering::AcqRel);
        let _done = Decrement(Arc::clone(&running));
        job(&mut area);
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
        let threads = if config.max_concurrent == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.max_concurrent
        };
        // Admission is decided by `in_flight` (threads + queue); the channel
        // is sized so an admitted job always fits.
        let capacity = threads + config.max_queue;
        let (sender, receiver) = sync_channel::<Job>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let running = Arc::new(AtomicUsize::new(0));
        for n in 0..threads {
            let receiver = Arc::clone(&receiver);
            let running = Arc::clone(&running);
            std::thread::Builder::new()
                .name(format!("tessera-argon2-{n}"))
                .spawn(move || worker(receiver, running))
                .map_err(|e| AuthError::Internal(format!("cannot start hashing thread: {e}")))?;
        }
        let dummy_hash = dummy_hash(&params)?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                jobs: sender,
                threads,
                capacity,
                in_flight: Arc::new(AtomicUsize::new(0)),
                running,
                dummy_hash,
            }),
        })
    }

    /// Calls waiting for a hashing thread right now (for metrics).
    pub fn queue_depth(&self) -> usize {
        let in_flight = self.inner.in_flight.load(Ordering::Acquire);
        in_flight.saturating_sub(self.inner.running.load(Ordering::Acquire))
    }

    /// Hashes a new password with the configured parameters.
    pub async fn hash(&self, password: &Password) -> Result<String, AuthError> {
        let params = self.inner.params.clone();
        let password = password.expose().to_owned();
        self.run(move |area| hash_blocking(area, &params, &password))
            .await?
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
            .run(move |area| verify_blocking(area, &params, &hash, &candidate))
            .await?;
        Ok(Verification {
            matches: known && verification.matches,
            needs_rehash: known && verification.needs_rehash,
        })
    }

    /// Queues `work` for a hashing thread, or sheds it when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut WorkArea) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let (reply, answer) = oneshot::channel();
        let in_flight = Arc::clone(&self.inner.in_flight);
        let before = in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = Decrement(Arc::clone(&in_flight));
        if before >= self.inner.capacity {
            return Err(AuthError::Overloaded);
        }
        let submitted = std::time::Instant::now();
        let job: Job = Box::new(move |area: &mut WorkArea| {
            metrics::histogram!("tessera_password_hash_wait_seconds").record(submitted.elapsed());
            let result = work(area);
            // Free the slot before answering, so a caller that immediately
            // hashes again is not counted twice.
            drop(guard);
            // The caller may have gone away (client disconnected): nothing to do then.
            let _ = reply.send(result);
        });
        match self.inner.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(AuthError::Overloaded),
            Err(TrySendError::Disconnected(_)) => {
                return Err(AuthError::Internal("hashing threads stopped".into()))
            }
        }
        answer
            .await
            .map_err(|_| AuthError::Internal("hashing thread failed".into()))
    }
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(format!("hashing failed: {e}"))
}

/// A PHC string (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`) for `password`.
fn hash_blocking(
    area: &mut WorkArea,
    params: &Params,
    password: &str,
) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(internal)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_raw,
            &mut out,
            area.blocks(params),
        )
        .map_err(internal)?;
    phc_string(params, &salt, &out)
}

/// The PHC string of an Argon2id hash `out` of some password with `salt`.
fn phc_string(params: &Params, salt: &SaltString, out: &[u8]) -> Result<String, AuthError> {
    let output = Output::new(out).map_err(internal)?;
    Ok(format!(
        "${}$v={}$m={},t={},p={}${}${}",
        Algorithm::Argon2id.ident(),
        u32::from(Version::V0x13),
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        output
    ))
}

/// What unknown accounts are verified against: a PHC string with the
/// configured parameters, a random salt and a random output. Verifying
/// costs exactly what a real hash costs (the work is hashing the candidate),
/// and no password hashes to 32 random bytes. Nothing is hashed to make it,
/// so start-up neither takes a hash's time nor leaves its 19 MiB work area
/// behind in the allocator.
fn dummy_hash(params: &Params) -> Result<String, AuthError> {
    use rand::RngCore;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    rand::thread_rng().fill_bytes(&mut out);
    phc_string(params, &SaltString::generate(&mut OsRng), &out)
}

/// Checks `candidate` against a stored PHC string, with the parameters the
/// string carries, comparing in constant time.
fn verify_blocking(
    area: &mut WorkArea,
    params: &Params,
    stored: &str,
    candidate: &str,
) -> Verification {
    let no = Verification {
        matches: false,
        needs_rehash: false,
    };
    // A corrupt stored hash never matches; it is replaced on the next set-password.
    let Ok(parsed) = PasswordHash::new(stored) else {
        return no;
    };
    let (Ok(algorithm), Ok(stored_params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return no;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return no;
    };
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, stored_params.clone())
        .hash_password_into_with_memory(
            candidate.as_bytes(),
            salt_raw,
            &mut out,
            area.blocks(&stored_params),
        );
    // `Output`'s equality is constant time.
    let matches = computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected);
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
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::PasswordHasher as _;
        use argon2::PasswordVerifier as _;
        let config = cheap();
        let hasher = PasswordHasher::new(&config).unwrap();
        // Ours verifies with the reference implementation...
        let ours = hasher.hash(&pw("correct horse battery")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        // ...and the reference implementation's hashes verify with ours.
        let params = Params::new(config.memory_kib, config.iterations, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        let v = hasher
            .verify(Some(&theirs), "correct horse battery")
            .await
            .unwrap();
        assert!(v.matches && !v.needs_rehash);
        assert!(!hasher.verify(Some(&theirs), "wrong").await.unwrap().matches);
    }

    #[tokio::test]
    async fn unknown_user_never_matches_even_with_the_dummy_password() {
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        let v = hasher.verify(None, "anything at all").await.unwrap();
        assert!(!v.matches);
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        let dummy = PasswordHash::new(&hasher.inner.dummy_hash).unwrap();
        assert!(uses_params(&dummy, &hasher.inner.params), "configured cost");
        assert_eq!(dummy.algorithm, Algorithm::Argon2id.ident());
        assert_eq!(
            dummy.hash.map(|h| h.len()),
            Some(Params::DEFAULT_OUTPUT_LEN)
        );
        let other = PasswordHasher::new(&cheap()).unwrap();
        assert_ne!(hasher.inner.dummy_hash, other.inner.dummy_hash, "random");
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
        // One thread, no queue: of many simultaneous calls some must be shed.
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
