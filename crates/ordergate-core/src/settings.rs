//! The settings both builds share, parsed and bounded the same way: durations such
//! as `30s`, `5m`, `24h`, `7d` or `1h 30m`, and the body limit.

use std::time::Duration;

pub const DEFAULT_RESULT_TTL: &str = "24h";
pub const DEFAULT_LEASE_TTL: &str = "30s";
pub const DEFAULT_MAX_BODY: u64 = 65_536;
pub const MAX_BODY_LIMIT: u64 = 1_048_576;

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// How long a key's record lives after acceptance: 1s to 365d.
pub fn result_ttl(s: &str) -> Result<Duration, String> {
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
    fn a_lease_must_be_shorter_than_the_record() {
        assert!(check_lease_within_result(SECOND * 30, DAY, ("a", "b")).is_ok());
        assert!(check_lease_within_result(DAY, DAY, ("a", "b")).is_err());
    }
}
