//! Backoff between the attempts of one run.

use std::time::Duration;

/// The delay before retry number `retry` (1 for the first retry): `base * 2^(retry - 1)`, capped
/// at `max`, then drawn uniformly from the upper half of that (equal jitter), so that workers that
/// failed together do not retry in lockstep, yet never wait less than half the nominal delay.
pub(crate) fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
    let nominal = base
        .saturating_mul(2_u32.saturating_pow(retry.saturating_sub(1)))
        .min(max);
    let half = nominal / 2;
    let spread = u64::try_from(nominal.saturating_sub(half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_bounds_and_stop_at_the_maximum() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..1000 {
            for (retry, nominal) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (4, 800),
                (5, 1000),
                (30, 1000),
            ] {
                let nominal = Duration::from_millis(nominal);
                let delay = backoff(base, max, retry);
                assert!(
                    delay >= nominal / 2 && delay <= nominal,
                    "{retry}: {delay:?}"
                );
            }
        }
    }
}
