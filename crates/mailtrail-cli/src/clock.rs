//! Time as operators type and read it: durations like `30m`, `12h` or `7d` (parsed for
//! `--older-than`, printed for ages such as "oldest envelope 3m 12s ago") and UTC timestamps.

use std::time::Duration;

use chrono::DateTime;

/// A duration an operator typed that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a duration: use a number and a unit, s, m, h, d or w (e.g. 30m, 12h, 7d, 1h30m)"
)]
pub struct DurationError(String);

/// Parses `30m`, `12h`, `7d`, `2w`, `45s` or combinations such as `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = || DurationError(text.to_owned());
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(error());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(error()),
        };
        let amount: u64 = digits.parse().map_err(|_| error())?;
        digits.clear();
        total = amount
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(error)?;
    }
    if !digits.is_empty() {
        // A bare number is ambiguous (seconds? days?): refuse rather than guess.
        return Err(error());
    }
    Ok(Duration::from_secs(total))
}

/// A short readable age: `850ms`, `42s`, `3m 12s`, `5h 4m`, `2d 3h`.
pub fn format_age_ms(age_ms: i64) -> String {
    if age_ms < 0 {
        // Clocks of the receiving host and this one disagree; say so instead of lying.
        return "in the future (clock skew)".to_owned();
    }
    if age_ms < 1_000 {
        return format!("{age_ms}ms");
    }
    let seconds = age_ms / 1_000;
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

/// A UTC timestamp from milliseconds since the epoch, to the second: `2026-11-27 11:20:01Z`.
pub fn format_ms(at_ms: i64) -> String {
    DateTime::from_timestamp_millis(at_ms).map_or_else(
        || format!("{at_ms} ms"),
        |at| at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_the_way_operators_write_them() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration(" 2w "), Ok(Duration::from_secs(1_209_600)));
        for bad in ["", "7", "d", "7x", "1.5h", "-3d", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ages_keep_the_two_largest_units() {
        assert_eq!(format_age_ms(850), "850ms");
        assert_eq!(format_age_ms(42_000), "42s");
        assert_eq!(format_age_ms(192_000), "3m 12s");
        assert_eq!(format_age_ms(5 * 3_600_000 + 4 * 60_000), "5h 4m");
        assert_eq!(format_age_ms(2 * 86_400_000 + 3 * 3_600_000), "2d 3h");
        assert_eq!(format_age_ms(-5), "in the future (clock skew)");
    }

    #[test]
    fn timestamps_print_in_utc() {
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14 22:13:20Z");
    }
}
