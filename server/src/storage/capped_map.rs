//! The bounded map the SQLite writer keeps its lookups in (`bucket_ids`,
//! `sas_cache`): keyed by text that comes from clients, so
//!
//! - a key longer than [`MAX_KEY_BYTES`] is not kept (its lookup costs the
//!   query each time instead of a copy in memory);
//! - at [`MAX_ENTRIES`] keys it starts over (about 2 MiB at most);
//! - the hash is aHash with a random seed, so chosen keys cannot force
//!   collisions.

use std::collections::HashMap;

use ahash::RandomState;

/// Keys kept.
pub const MAX_ENTRIES: usize = 4_096;

/// Longest key kept. The real keys are tens of bytes (crash signatures) or
/// about 100 (a `StacktraceAddressSignature`: a path and a few offsets).
pub const MAX_KEY_BYTES: usize = 512;

/// Text keys to `V`, bounded as the module says.
#[derive(Debug)]
pub(super) struct CappedMap<V> {
    entries: HashMap<String, V, RandomState>,
}

impl<V> Default for CappedMap<V> {
    fn default() -> Self {
        CappedMap {
            entries: HashMap::default(),
        }
    }
}

impl<V> CappedMap<V> {
    /// Whether `key` is short enough to be kept.
    pub(super) fn keeps(key: &str) -> bool {
        key.len() <= MAX_KEY_BYTES
    }

    /// The value kept for `key`.
    pub(super) fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key)
    }

    /// Keeps `value` for `key`, unless the key is too long; a full map
    /// starts over first.
    pub(super) fn insert(&mut self, key: &str, value: V) {
        if !Self::keeps(key) {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key.to_owned(), value);
    }

    /// Forgets every key.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Keys kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
