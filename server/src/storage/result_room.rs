//! What each hook may still store before its disk cap, as this process last
//! saw it: the result upload needs it before the body is read (to cut an
//! inflating body off mid-stream), and reading the hook row for every
//! upload cost a database trip (and on SQLite a blocking-thread hop) each.
//!
//! The cache is only an early cut-off: the database's atomic claim is what
//! enforces the cap. A hook's stored bytes only grow, so a stale entry can
//! only over-estimate the room; the upload then reads up to the result cap
//! and the claim still refuses it (413, hook disabled). Entries hold only
//! figures read from the database: on PostgreSQL those its result batches
//! read under their row locks, and on both engines a re-read after
//! [`FRESH_FOR`], so any process's uploads are seen within that time. (Adding
//! this process's accepted bytes to an entry, as the SQLite engine once did,
//! counted a result twice whenever a re-read landed between its commit and
//! the addition; since the larger count wins, the entry then under-estimated
//! the room for good and an upload that fit was taken for one over the cap,
//! disabling its hook.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::HookRecord;

/// How long an entry is used without reading the hook again.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// Most hooks remembered; past it the cache starts over (only hooks that
/// exist get an entry, so this bounds memory, not correctness).
const MAX_ENTRIES: usize = 4096;

/// A hook's disk cap and stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookRoom {
    /// The hook's disk cap in bytes.
    pub disk_cap: i64,
    /// Bytes of results stored so far.
    pub bytes: i64,
}

impl HookRoom {
    /// The hook's figures.
    pub fn of(hook: &HookRecord) -> HookRoom {
        HookRoom {
            disk_cap: hook.disk_cap,
            bytes: hook.bytes,
        }
    }

    /// Bytes the hook may still store (0 when over its cap).
    pub fn room(&self) -> i64 {
        self.disk_cap.saturating_sub(self.bytes).max(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    room: HookRoom,
    seen: Instant,
}

/// The per-process cache of [`HookRoom`]s.
#[derive(Debug, Default)]
pub(super) struct RoomCache {
    entries: Mutex<HashMap<i64, Entry>>,
}

impl RoomCache {
    /// The hook's figures if seen within [`FRESH_FOR`].
    pub(super) fn fresh(&self, hook_id: i64) -> Option<HookRoom> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&hook_id)
            .filter(|e| e.seen.elapsed() < FRESH_FOR)
            .map(|e| e.room)
    }

    /// Records figures read from the database now. Bytes only grow: when
    /// a concurrent refresh already saw more, the larger count stays.
    pub(super) fn saw(&self, hook_id: i64, room: HookRoom) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&hook_id) {
            entries.clear();
        }
        let seen = Instant::now();
        entries
            .entry(hook_id)
            .and_modify(|e| {
                let bytes = if e.room.disk_cap == room.disk_cap {
                    e.room.bytes.max(room.bytes)
                } else {
                    room.bytes
                };
                *e = Entry {
                    room: HookRoom {
                        disk_cap: room.disk_cap,
                        bytes,
                    },
                    seen,
                };
            })
            .or_insert(Entry { room, seen });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CAP: i64 = 1000;

    #[test]
    fn an_older_read_never_grows_the_room() {
        let c = RoomCache::default();
        c.saw(
            1,
            HookRoom {
                disk_cap: CAP,
                bytes: 400,
            },
        );
        c.saw(
            1,
            HookRoom {
                disk_cap: CAP,
                bytes: 100,
            },
        );
        assert_eq!(c.fresh(1).unwrap().room(), 600);
    }

    #[test]
    fn the_room_is_what_the_database_said_and_never_negative() {
        let c = RoomCache::default();
        assert_eq!(c.fresh(2), None, "unknown hooks stay unknown");
        c.saw(
            2,
            HookRoom {
                disk_cap: CAP,
                bytes: 1500,
            },
        );
        assert_eq!(c.fresh(2).unwrap().room(), 0, "never negative");
        // A raised cap is taken as read.
        c.saw(
            2,
            HookRoom {
                disk_cap: 4 * CAP,
                bytes: 1500,
            },
        );
        assert_eq!(c.fresh(2).unwrap().room(), 2500);
    }
}
