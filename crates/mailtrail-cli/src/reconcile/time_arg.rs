//! The times `--since` and `--until` take: an RFC 3339 time or a duration back from now.

use std::time::Duration;

use chrono::DateTime;

use crate::clock::parse_duration;

/// A time given on the command line: absolute, or a duration back from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeArg {
    /// Microseconds since the epoch.
    At(i64),
    /// This long before the run starts.
    Ago(Duration),
}

impl TimeArg {
    /// Parses `2026-12-05T10:00:00Z` or `24h`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
            return Ok(Self::At(at.timestamp_micros()));
        }
        parse_duration(text).map(Self::Ago).map_err(|_| {
            format!(
                "`{text}` is neither an RFC 3339 time (2026-12-05T10:00:00Z) nor a duration \
                 back from now (24h, 90m)"
            )
        })
    }

    /// Microseconds since the epoch, relative to `now_micros`.
    pub fn micros(self, now_micros: i64) -> i64 {
        match self {
            Self::At(micros) => micros,
            Self::Ago(ago) => now_micros - i64::try_from(ago.as_micros()).unwrap_or(i64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_or_durations_back_from_now() {
        assert_eq!(
            TimeArg::parse("2023-11-14T22:13:20Z").unwrap(),
            TimeArg::At(1_700_000_000_000_000)
        );
        assert_eq!(
            TimeArg::parse("2023-11-14T23:13:20+01:00").unwrap(),
            TimeArg::At(1_700_000_000_000_000)
        );
        let ago = TimeArg::parse("24h").unwrap();
        assert_eq!(
            ago.micros(100_000_000_000),
            100_000_000_000 - 86_400_000_000
        );
        let error = TimeArg::parse("yesterday").unwrap_err();
        assert!(error.contains("RFC 3339"), "{error}");
    }
}
