//! When to try a failed delivery again.

use std::time::Duration;

/// First retry delay.
pub const BACKOFF_BASE_SECS: u64 = 60;
/// Longest retry delay (six hours).
pub const BACKOFF_CAP_SECS: u64 = 6 * 3600;

/// The retry delay after `attempts` failures: `BACKOFF_BASE_SECS × 2^(attempts-1)`,
/// capped at [`BACKOFF_CAP_SECS`], then a random point in its upper half
/// (so that many machines that lost the server together do not come back
/// together).
pub fn backoff_delay(attempts: u32, rng: &mut impl rand::Rng) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let full = BACKOFF_BASE_SECS
        .saturating_mul(1u64 << exponent)
        .min(BACKOFF_CAP_SECS);
    let half = full / 2;
    let jitter = rng.random_range(0..=half);
    Duration::from_secs(full.saturating_sub(half).saturating_add(jitter))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn backoff_grows_has_jitter_and_is_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempts in 1..=40u32 {
            let full = BACKOFF_BASE_SECS
                .saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
                .min(BACKOFF_CAP_SECS);
            for _ in 0..50 {
                let d = backoff_delay(attempts, &mut rng).as_secs();
                assert!(d >= full - full / 2 && d <= full, "{attempts}: {d}");
            }
        }
        let samples: std::collections::HashSet<u64> = (0..50)
            .map(|_| backoff_delay(10, &mut rng).as_secs())
            .collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
