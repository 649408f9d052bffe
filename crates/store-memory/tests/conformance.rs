//! The shared store behaviour, on the in-memory adapter.
#![allow(clippy::expect_used, clippy::unwrap_used)]

store_conformance::conformance_tests!(memory, async { (store_memory::MemoryStore::new(), ()) });
