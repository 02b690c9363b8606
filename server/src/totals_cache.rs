//! The database totals `/metrics` shows, read at most once per interval.
//!
//! Counting every stored OOPS is a scan of the largest table, and
//! `/metrics` answers anyone who can reach daisy: read per scrape, a loop
//! of requests would keep the database scanning (on SQLite, holding the
//! one read connection that API calls, hook lists and token checks share).
//! So the totals are read once per [`TOTALS_MAX_AGE`] at most, by one
//! request while the others wait for its answer, and are that old at most.

use std::time::{Duration, Instant};

use crate::storage::{Storage, StorageError, Totals};

/// How old the totals `/metrics` shows may be: below Prometheus' usual
/// scrape interval, so a scrape rarely sees the previous one's figures.
pub const TOTALS_MAX_AGE: Duration = Duration::from_secs(10);

/// The last totals read and when.
#[derive(Debug)]
pub struct TotalsCache {
    max_age: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Totals)>>,
}

impl TotalsCache {
    /// Totals kept for `max_age`.
    pub fn new(max_age: Duration) -> Self {
        TotalsCache {
            max_age,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The totals, read from `storage` only when the last reading is older
    /// than the maximum age. The lock is held across the read, so callers
    /// arriving meanwhile wait for it and share its answer instead of each
    /// starting a scan.
    pub async fn get(&self, storage: &dyn Storage) -> Result<Totals, StorageError> {
        let mut last = self.last.lock().await;
        if let Some((at, totals)) = *last
            && at.elapsed() < self.max_age
        {
            return Ok(totals);
        }
        let totals = storage.totals().await?;
        *last = Some((Instant::now(), totals));
        Ok(totals)
    }
}
