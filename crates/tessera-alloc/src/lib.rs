//! The allocator of the `tessera` binary: mimalloc, told to hand freed
//! memory back to the system at once.
//!
//! Why mimalloc: on a page of 100 accounts glibc's malloc was 13–16 % of the
//! server's time (`perf record`, `cargo xtask bench`, admin scenario), much
//! of it arena locks, because strings made on sqlx's SQLite worker threads
//! are freed on tokio's. With mimalloc that page went from 5,800 to 7,400
//! per second on SQLite and `/users/me` from 18,400 to 20,100.
//!
//! Why the option: mimalloc's purge delay (1 s by default) is not a timer
//! but an age checked the next time a thread allocates. A server that goes
//! quiet after start-up (or after a burst) never allocates again, so the
//! pages freed by that work stayed resident: 31 MiB at rest instead of the
//! 25 MiB glibc gives, over the 30 MiB the bench allows. With a delay of 0
//! the free that empties a page returns it; the bench measured no loss of
//! throughput.
//!
//! This is the workspace's only `unsafe` code (every other crate forbids
//! it): one call into mimalloc's C API, in one function.

/// The global allocator: `#[global_allocator] static A: Allocator = Allocator;`
/// in the binary.
pub use mimalloc::MiMalloc as Allocator;

#[cfg(test)]
use std::os::raw::c_long;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (`mimalloc.h`; the
/// same position in its v2 and v3). `libmimalloc-sys` has no constant for
/// it; `the_option_is_purge_delay` checks the position against the default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc v3's default purge delay in milliseconds.
#[cfg(test)]
const DEFAULT_PURGE_DELAY_MS: c_long = 1000;

/// Freed pages go back to the system when they empty, not on some later
/// allocation. Call first thing in `main`.
pub fn return_freed_memory_at_once() {
    // SAFETY: `mi_option_set` writes one value in mimalloc's option table
    // (an atomic store); it takes no pointers and is callable at any time,
    // from any thread. `PURGE_DELAY` is a valid option (see above).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The purge delay now in effect, in milliseconds.
    fn purge_delay_ms() -> c_long {
        // SAFETY: as above: a read of one value in the option table.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_get(PURGE_DELAY)
        }
    }

    /// If mimalloc's option list ever moved, this position would read some
    /// other option, whose default is not 1000 (no other option's is).
    #[test]
    fn the_option_is_purge_delay() {
        assert_eq!(purge_delay_ms(), DEFAULT_PURGE_DELAY_MS);
        return_freed_memory_at_once();
        assert_eq!(purge_delay_ms(), 0);
    }
}
