//! The application state every handler shares.

use std::sync::Arc;

use crate::body_budget::BodyBudget;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::storage::Storage;
use crate::totals_cache::{TOTALS_MAX_AGE, TotalsCache};

/// Configuration, storage and counters of one daisy process.
pub struct App {
    /// The resolved configuration.
    pub config: Config,
    /// The database.
    pub storage: Arc<dyn Storage>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Memory that request bodies may hold at once.
    pub bodies: BodyBudget,
    /// Held while an unrecorded core file is removed and replaced, so that
    /// two uploads of one core cannot both take it for a leftover.
    pub core_replace: tokio::sync::Mutex<()>,
    /// The database totals of `/metrics`, read at most every few seconds.
    pub totals: TotalsCache,
}

/// What handlers receive.
pub type AppState = Arc<App>;

impl App {
    /// Wraps configuration and storage into the shared state.
    pub fn new(config: Config, storage: Arc<dyn Storage>) -> AppState {
        Arc::new(App {
            bodies: BodyBudget::new(config.limits.body_bytes_in_flight),
            config,
            storage,
            metrics: Metrics::default(),
            core_replace: tokio::sync::Mutex::new(()),
            totals: TotalsCache::new(TOTALS_MAX_AGE),
        })
    }
}
