//! Query parameters: read leniently as text, then parsed with an error that names the parameter.

use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, quoted};

/// `since` and `until` (inclusive days, UTC), as every statistics endpoint takes them.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First day counted, `YYYY-MM-DD` (UTC, inclusive).
    pub since: Option<String>,
    /// Last day counted, `YYYY-MM-DD` (UTC, inclusive).
    pub until: Option<String>,
}

/// The project statistics endpoint's parameters.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProjectStatsParams {
    /// `subject` for one group per subject.
    pub by: Option<String>,
    /// First day counted, `YYYY-MM-DD` (UTC, inclusive).
    pub since: Option<String>,
    /// Last day counted, `YYYY-MM-DD` (UTC, inclusive).
    pub until: Option<String>,
}

/// The message list's parameters.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageParams {
    /// Only this backer's messages.
    pub backer_id: Option<String>,
    /// Only this project's messages.
    pub project_id: Option<String>,
    /// Only messages in this status.
    pub status: Option<String>,
    /// First day, `YYYY-MM-DD`.
    pub since: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    pub until: Option<String>,
    /// Messages per page (1 to 500, default 50).
    pub limit: Option<String>,
    /// Where to continue: a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Most messages in one page.
pub const MAX_LIMIT: i64 = 500;
/// Messages in a page when the client does not say.
pub const DEFAULT_LIMIT: i64 = 50;

/// A day range, checked: both ends are dates and the range is not empty.
pub fn range(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>), ApiError> {
    let since = since.map(|value| date("since", value)).transpose()?;
    let until = until.map(|value| date("until", value)).transpose()?;
    if let (Some(first), Some(last)) = (since, until)
        && first > last
    {
        return Err(ApiError::BadParameter {
            name: "until",
            problem: format!("{last} is before since ({first})"),
        });
    }
    Ok((since, until))
}

fn date(name: &'static str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| ApiError::BadParameter {
        name,
        problem: format!("expected a date YYYY-MM-DD, got `{}`", quoted(value)),
    })
}

/// A page size within bounds.
pub fn limit(value: Option<&str>) -> Result<i64, ApiError> {
    let Some(value) = value else {
        return Ok(DEFAULT_LIMIT);
    };
    match value.parse::<i64>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::BadParameter {
            name: "limit",
            problem: format!("expected 1 to {MAX_LIMIT}, got `{}`", quoted(value)),
        }),
    }
}

/// Cursors are opaque to clients: `c` and the keyset position in hex.
pub fn encode_cursor(after: i64) -> String {
    format!("c{after:x}")
}

/// Reads a cursor this API handed out.
pub fn decode_cursor(value: &str) -> Result<i64, ApiError> {
    value
        .strip_prefix('c')
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .filter(|after| *after > 0)
        .ok_or_else(|| ApiError::BadParameter {
            name: "cursor",
            problem: "not a cursor this API handed out; start again without one".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_limits_and_cursors_are_checked_and_name_the_parameter() {
        assert!(range(Some("2026-11-01"), Some("2026-11-30")).is_ok());
        let error = range(Some("2026-13-01"), None).unwrap_err().to_string();
        assert!(error.starts_with("since: expected a date"), "{error}");
        let error = range(Some("2026-11-02"), Some("2026-11-01"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("until:"), "{error}");
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some("0")).is_err());
        assert!(limit(Some("501")).is_err());
        assert_eq!(decode_cursor(&encode_cursor(12345)).unwrap(), 12345);
        assert!(decode_cursor("c-1").is_err());
        assert!(decode_cursor("12").is_err());
    }
}
