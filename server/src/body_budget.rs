//! Memory that request bodies may hold at once, across all requests.
//!
//! Every route caps its own body (`max_report_bytes`, `max_result_bytes`)
//! and the request timeout bounds how long it is held, but without a total
//! many uploads at once could each hold their cap (16 MiB crash bodies, or
//! results inflating to `max_result_bytes`). The first [`FREE_BYTES`] of
//! each body are free, so the uploads clients really send (a crash of a
//! few KiB, a result of less) never touch the budget; beyond that a body
//! takes its bytes from the budget as it grows and gives them back when its
//! request is done. A body that finds the budget spent is refused at once
//! (`503`, retry later) instead of waiting, so that no request holds memory
//! while it waits for more.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of each body not charged to the budget.
pub const FREE_BYTES: usize = 64 * 1024;

/// The budget's unit: permits count these.
const UNIT: usize = 1024;

/// The shared budget.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
}

impl BodyBudget {
    /// A budget of `bytes` (rounded down to whole KiB).
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget {
            permits: Arc::new(Semaphore::new((bytes / UNIT).min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Bytes left in the budget now (for tests and the metrics).
    pub fn available(&self) -> usize {
        self.permits.available_permits().saturating_mul(UNIT)
    }

    /// A charge for one body, empty until the body passes [`FREE_BYTES`].
    pub fn charge(&self) -> BodyCharge {
        BodyCharge {
            budget: self.clone(),
            held: None,
            units: 0,
        }
    }
}

/// What one body holds of the budget; given back when dropped.
#[derive(Debug)]
pub struct BodyCharge {
    budget: BodyBudget,
    held: Option<OwnedSemaphorePermit>,
    units: usize,
}

/// The budget is spent: the body must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSpent;

impl BodyCharge {
    /// Makes the charge cover a body of `bytes` (it never shrinks).
    pub fn cover(&mut self, bytes: usize) -> Result<(), BudgetSpent> {
        let units = bytes.saturating_sub(FREE_BYTES).div_ceil(UNIT);
        let more = units.saturating_sub(self.units);
        if more == 0 {
            return Ok(());
        }
        let more_u32 = u32::try_from(more).map_err(|_| BudgetSpent)?;
        let permit = Arc::clone(&self.budget.permits)
            .try_acquire_many_owned(more_u32)
            .map_err(|_| BudgetSpent)?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.units = units;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn small_bodies_are_free_and_large_ones_share_the_budget() {
        let budget = BodyBudget::new(100 * 1024);
        let mut small = budget.charge();
        small.cover(FREE_BYTES).unwrap();
        assert_eq!(budget.available(), 100 * 1024);
        let mut large = budget.charge();
        large.cover(FREE_BYTES + 60 * 1024).unwrap();
        assert_eq!(budget.available(), 40 * 1024);
        // Growing takes only the difference; the budget runs out.
        large.cover(FREE_BYTES + 90 * 1024).unwrap();
        assert_eq!(budget.available(), 10 * 1024);
        let mut other = budget.charge();
        assert_eq!(other.cover(FREE_BYTES + 20 * 1024), Err(BudgetSpent));
        // A request done gives its bytes back.
        drop(large);
        assert_eq!(budget.available(), 100 * 1024);
        other.cover(FREE_BYTES + 20 * 1024).unwrap();
        assert_eq!(budget.available(), 80 * 1024);
    }
}
