//! The settings both builds share, parsed and bounded the same way: durations such
//! as `30s`, `5m`, `24h`, `7d` or `1h 30m`, and the body limit.

use std::time::{Duration, SystemTime};

use crate::shard::{Layout, MAX_SHARDS, Previous};

pub const DEFAULT_RESULT_TTL: &str = "24h";
pub const DEFAULT_LEASE_TTL: &str = "30s";
pub const DEFAULT_MAX_BODY: u64 = 65_536;
pub const DEFAULT_DELIVER_MAX_AGE: &str = "72h";
pub const MAX_BODY_LIMIT: u64 = 1_048_576;

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// How long a key's record lives after acceptance: 1s to 365d.
/// A duration in whole milliseconds, as clocks and stored expiries count them
/// (saturating: every bounded setting fits).
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub fn result_ttl(s: &str) -> Result<Duration, String> {
    duration_within(s, (SECOND, "1s"), (DAY * 365, "365d"))
}

/// How long a delivery is retried before it is given up as failed: 1s to 365d.
pub fn deliver_max_age(s: &str) -> Result<Duration, String> {
    duration_within(s, (SECOND, "1s"), (DAY * 365, "365d"))
}

/// How long an unfinished request may hold its key: 100ms to 1h.
pub fn lease_ttl(s: &str) -> Result<Duration, String> {
    duration_within(s, (Duration::from_millis(100), "100ms"), (HOUR, "1h"))
}

/// How long in-flight requests may run on at shutdown: 0s to 1h.
pub fn shutdown_timeout(s: &str) -> Result<Duration, String> {
    duration_within(s, (Duration::ZERO, "0s"), (HOUR, "1h"))
}

/// The largest accepted body, in bytes: 1 to 1 MiB.
pub fn max_body(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of bytes"))?;
    if !(1..=MAX_BODY_LIMIT).contains(&n) {
        return Err(format!("must be from 1 to {MAX_BODY_LIMIT}"));
    }
    Ok(n)
}

/// A request may not outlive the record it creates. `names` are how the two
/// settings are spelled where they were given (flags or variables).
pub fn check_lease_within_result(
    lease_ttl: Duration,
    result_ttl: Duration,
    names: (&str, &str),
) -> Result<(), String> {
    if lease_ttl >= result_ttl {
        return Err(format!(
            "{} ({}) must be shorter than {} ({}): a request may not outlive the record \
             it creates",
            names.0,
            humantime::format_duration(lease_ttl),
            names.1,
            humantime::format_duration(result_ttl)
        ));
    }
    Ok(())
}

/// Shards per tenant at the edge unless set otherwise.
pub const DEFAULT_SHARDS: u16 = 16;

/// The edge build's shard layout: the count (`ORDERGATE_SHARDS`), the counts before it
/// (`ORDERGATE_PREVIOUS_SHARDS`, most recent first, comma-separated) and when the
/// current count took effect (`ORDERGATE_SHARDS_CHANGED_AT`, RFC 3339), which earlier
/// counts need.
pub fn shard_layout(
    shards: Option<&str>,
    previous: Option<&str>,
    changed_at: Option<&str>,
) -> Result<Layout, String> {
    let shards = match shards {
        Some(v) => shard_count(v).map_err(|e| format!("ORDERGATE_SHARDS: {e}"))?,
        None => DEFAULT_SHARDS,
    };
    let previous = match (previous, changed_at) {
        (None, None) => None,
        (Some(counts), Some(at)) => Some(Previous {
            counts: counts
                .split(',')
                .map(shard_count)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("ORDERGATE_PREVIOUS_SHARDS: {e}"))?,
            changed_at_ms: instant_ms(at)
                .map_err(|e| format!("ORDERGATE_SHARDS_CHANGED_AT: {e}"))?,
        }),
        (Some(_), None) => {
            return Err(
                "ORDERGATE_PREVIOUS_SHARDS needs ORDERGATE_SHARDS_CHANGED_AT: when \
                        the current count took effect"
                    .into(),
            );
        }
        (None, Some(_)) => {
            return Err(
                "ORDERGATE_SHARDS_CHANGED_AT needs ORDERGATE_PREVIOUS_SHARDS: the \
                        count before the change"
                    .into(),
            );
        }
    };
    Ok(Layout { shards, previous })
}

fn shard_count(v: &str) -> Result<u16, String> {
    v.trim()
        .parse::<u16>()
        .ok()
        .filter(|n| (1..=MAX_SHARDS).contains(n))
        .ok_or_else(|| format!("{v:?} is not a number from 1 to {MAX_SHARDS}"))
}

/// An RFC 3339 instant (`2026-12-04T09:00:00Z`) in milliseconds since the Unix epoch.
pub fn instant_ms(s: &str) -> Result<i64, String> {
    let instant = humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e})"))?;
    let since_epoch = instant
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    i64::try_from(since_epoch.as_millis()).map_err(|_| format!("{s:?} is too far ahead"))
}

/// A duration from `min` to `max` (each with the way it is written).
fn duration_within(
    s: &str,
    (min, min_text): (Duration, &str),
    (max, max_text): (Duration, &str),
) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write durations like 500ms, 30s, 5m, 24h, 7d)"))?;
    if d < min || d > max {
        return Err(format!("must be from {min_text} to {max_text}"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        assert_eq!(result_ttl("24h"), Ok(DAY));
        assert!(result_ttl("500ms").is_err());
        assert!(lease_ttl("2h").is_err());
        assert!(max_body("0").is_err());
        assert_eq!(max_body("65536"), Ok(DEFAULT_MAX_BODY));
    }

    #[test]
    fn a_shard_layout_names_its_earlier_counts_and_when_they_ended() {
        assert_eq!(shard_layout(None, None, None), Ok(Layout::fixed(16)));
        assert_eq!(shard_layout(Some("4"), None, None), Ok(Layout::fixed(4)));
        let changed = shard_layout(Some("4"), Some("16, 8"), Some("2026-12-04T09:00:00Z"));
        assert_eq!(
            changed,
            Ok(Layout {
                shards: 4,
                previous: Some(Previous {
                    counts: vec![16, 8],
                    changed_at_ms: 1_796_374_800_000,
                }),
            })
        );
        for (shards, previous, at) in [
            (Some("0"), None, None),
            (Some("65536"), None, None),
            (None, Some("16"), None),
            (None, None, Some("2026-12-04T09:00:00Z")),
            (None, Some("x"), Some("2026-12-04T09:00:00Z")),
            (None, Some("16"), Some("yesterday")),
        ] {
            assert!(
                shard_layout(shards, previous, at).is_err(),
                "{shards:?} {previous:?} {at:?}"
            );
        }
    }

    #[test]
    fn a_lease_must_be_shorter_than_the_record() {
        assert!(check_lease_within_result(SECOND * 30, DAY, ("a", "b")).is_ok());
        assert!(check_lease_within_result(DAY, DAY, ("a", "b")).is_err());
    }
}
