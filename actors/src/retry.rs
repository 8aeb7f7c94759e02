//! The retry schedule as pure functions, so it can be table-tested.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::RetryPolicy;

/// Maximum postponement a `Retry-After` header may cause.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Returns the delay before retry `k` (1-based): `interval × multiplier^(k−1)`,
/// or `None` when the policy allows no retry `k`.
pub fn retry_delay(policy: &RetryPolicy, k: u32) -> Option<Duration> {
    if k == 0 || k > policy.max_retries {
        return None;
    }
    let seconds =
        policy.retry_interval_seconds as f64 * policy.backoff_multiplier.powi(k as i32 - 1);
    Some(Duration::from_secs_f64(seconds))
}

/// Returns the delay before the next attempt: the schedule's delay, postponed
/// to a `Retry-After` value when that is later, with the header capped at
/// [`MAX_RETRY_AFTER`].
pub fn next_delay(scheduled: Duration, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(header) => scheduled.max(header.min(MAX_RETRY_AFTER)),
        None => scheduled,
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP-date in any of the
/// three forms RFC 9110 allows (IMF-fixdate, RFC 850 and asctime).
/// A date in the past gives zero; anything unparsable gives `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::<Utc>::from(httpdate::parse_http_date(value).ok()?);
    let delta = date - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Spreads retries that fell due while the service was down: the i-th overdue
/// retry waits `i × step`, so a restart sends no burst.
pub fn recovery_delay(overdue_index: usize, step: Duration) -> Duration {
    step.saturating_mul(overdue_index.min(u32::MAX as usize) as u32)
}

/// Scales a delay by the configured time scale (1.0 in production; tests shrink it).
pub fn scale(delay: Duration, time_scale: f64) -> Duration {
    Duration::from_secs_f64((delay.as_secs_f64() * time_scale).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32, interval: u32, multiplier: f64) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            retry_interval_seconds: interval,
            backoff_multiplier: multiplier,
        }
    }

    #[test]
    fn retry_delay_table() {
        let cases = [
            (policy(5, 60, 2.0), 1, Some(60.0)),
            (policy(5, 60, 2.0), 2, Some(120.0)),
            (policy(5, 60, 2.0), 5, Some(960.0)),
            (policy(5, 60, 2.0), 6, None),
            (policy(0, 60, 2.0), 1, None),
            (policy(3, 10, 1.0), 3, Some(10.0)),
            (policy(10, 3600, 5.0), 10, Some(3600.0 * 5f64.powi(9))),
            (policy(3, 10, 1.5), 3, Some(22.5)),
        ];
        for (policy, k, expected) in cases {
            let got = retry_delay(&policy, k).map(|d| d.as_secs_f64());
            assert_eq!(got, expected, "policy {policy:?}, retry {k}");
        }
    }

    #[test]
    fn retry_after_postpones_but_is_capped() {
        let minute = Duration::from_secs(60);
        assert_eq!(next_delay(minute, None), minute);
        assert_eq!(next_delay(minute, Some(Duration::from_secs(5))), minute);
        assert_eq!(
            next_delay(minute, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            next_delay(minute, Some(Duration::from_secs(86_400))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Fri, 04 Dec 2026 10:02:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Friday, 04-Dec-26 10:02:00 GMT", now),
            Some(Duration::from_secs(120)),
            "RFC 850 form"
        );
        assert_eq!(
            parse_retry_after("Fri Dec  4 10:02:00 2026", now),
            Some(Duration::from_secs(120)),
            "asctime form"
        );
        assert_eq!(
            parse_retry_after("Fri, 04 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn recovery_spreads_overdue_retries() {
        let step = Duration::from_millis(50);
        assert_eq!(recovery_delay(0, step), Duration::ZERO);
        assert_eq!(recovery_delay(10, step), Duration::from_millis(500));
    }
}
