//! The shared store behaviour, on the in-memory adapter.

store_conformance::conformance_tests!(memory, async { (store_memory::MemoryStore::new(), ()) });
