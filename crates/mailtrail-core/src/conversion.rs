//! A conversion the application reports (a pledge, say): what it is, and how it is checked.
//!
//! One validation for every way in: the read API refuses a bad report with 400 naming the field,
//! `mailtrail conversions import` refuses a bad CSV line with its number, and the worker, which
//! reads the envelope the API queued, applies the same rules again (a queued envelope is input
//! too) and dead-letters what fails them.
//!
//! An `id` is the application's own and is unique within its project: the same conversion
//! reported twice (a retry, an import run twice) is stored once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::triage::{EARLIEST_EVENT_MICROS, MAX_AHEAD_OF_RECEIPT_MICROS};

/// The most conversions one report (one request, one queued envelope) may carry.
pub const MAX_CONVERSIONS_PER_REPORT: usize = 1000;

/// How many days before a conversion a click or open may be credited with it, unless
/// `MAILTRAIL_ATTRIBUTION_WINDOW_DAYS` says otherwise.
pub const DEFAULT_ATTRIBUTION_WINDOW_DAYS: u32 = 7;

/// The longest attribution window accepted, in days.
pub const MAX_ATTRIBUTION_WINDOW_DAYS: u32 = 365;

/// The longest `id` or `kind` accepted, in bytes.
const MAX_TEXT_BYTES: usize = 200;

/// A validated conversion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conversion {
    /// The application's id for it, unique within its project.
    pub id: String,
    /// The backer who converted.
    pub backer_id: i64,
    /// The project converted to.
    pub project_id: i64,
    /// What kind of conversion (`pledge`, ...), as the application names it.
    pub kind: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Its value in cents, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_cents: Option<i64>,
}

/// Why a reported conversion was refused: the field at fault and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct ConversionError {
    /// The field at fault (or `body` when the report is not a conversion at all).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConversionError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// Why a report of several conversions was refused: which one (0-based) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not JSON, empty, or too many conversions.
    #[error("{0}")]
    Body(String),
    /// One conversion of the report is invalid.
    #[error("conversion {index}: {error}")]
    Conversion {
        /// Its position in the report, from 0.
        index: usize,
        /// What is wrong with it.
        error: ConversionError,
    },
}

impl ReportError {
    /// The field at fault, `body` when the report as a whole is.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Body(_) => "body",
            Self::Conversion { error, .. } => error.field,
        }
    }
}

/// Reads a report: one conversion object or an array of 1 to [`MAX_CONVERSIONS_PER_REPORT`],
/// each checked against `now_ms` (an event time may not be more than a day ahead of it).
pub fn parse_report(body: &[u8], now_ms: i64) -> Result<Vec<Conversion>, ReportError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ReportError::Body("the body is not valid JSON".to_owned()))?;
    let items = match value {
        Value::Array(items) => items,
        single @ Value::Object(_) => vec![single],
        _ => {
            return Err(ReportError::Body(
                "the body must be a conversion object or an array of them".to_owned(),
            ));
        }
    };
    if items.is_empty() || items.len() > MAX_CONVERSIONS_PER_REPORT {
        return Err(ReportError::Body(format!(
            "a report carries 1 to {MAX_CONVERSIONS_PER_REPORT} conversions, not {}",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            Conversion::from_json(item, now_ms)
                .map_err(|error| ReportError::Conversion { index, error })
        })
        .collect()
}

/// The JSON body of a report of `conversions`, as queued for the worker.
pub fn report_body(conversions: &[Conversion]) -> String {
    // Serialising strings, integers and times cannot fail.
    serde_json::to_string(conversions).unwrap_or_default()
}

impl Conversion {
    /// Reads one conversion object.
    pub fn from_json(value: &Value, now_ms: i64) -> Result<Self, ConversionError> {
        let Value::Object(object) = value else {
            return Err(ConversionError::new("body", "must be a conversion object"));
        };
        let text = |field: &'static str| -> Result<Option<String>, ConversionError> {
            match object.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(Value::Number(number)) => Ok(Some(number.to_string())),
                Some(_) => Err(ConversionError::new(field, "must be a string or a number")),
            }
        };
        Self::from_fields(text, object_has_unknown_field(object), now_ms)
    }

    /// Reads one conversion from its fields as text (a CSV line): `field(name)` gives a field's
    /// value, `None` when it is absent or empty.
    pub fn from_text_fields(
        field: impl Fn(&'static str) -> Option<String>,
        now_ms: i64,
    ) -> Result<Self, ConversionError> {
        Self::from_fields(|name| Ok(field(name)), None, now_ms)
    }

    fn from_fields(
        field: impl Fn(&'static str) -> Result<Option<String>, ConversionError>,
        unknown_field: Option<String>,
        now_ms: i64,
    ) -> Result<Self, ConversionError> {
        if let Some(unknown) = unknown_field {
            return Err(ConversionError::new(
                "body",
                format!("has an unknown field `{}`", excerpt(&unknown)),
            ));
        }
        let required = |name: &'static str| -> Result<String, ConversionError> {
            field(name)?
                .filter(|value| !value.trim().is_empty())
                .ok_or_else(|| ConversionError::new(name, "is missing"))
        };
        let id = bounded_text("id", required("id")?)?;
        let backer_id = integer("backer_id", &required("backer_id")?)?;
        let project_id = integer("project_id", &required("project_id")?)?;
        let kind = bounded_text("kind", required("kind")?)?;
        let occurred_at = time(&required("occurred_at")?, now_ms)?;
        let value_cents = match field("value_cents")?.filter(|value| !value.trim().is_empty()) {
            None => None,
            Some(value) => {
                let cents = integer("value_cents", &value)?;
                if cents < 0 {
                    return Err(ConversionError::new("value_cents", "may not be negative"));
                }
                Some(cents)
            }
        };
        Ok(Self {
            id,
            backer_id,
            project_id,
            kind,
            occurred_at,
            value_cents,
        })
    }
}

/// The first field of `object` that is not a conversion's, if any: a typo (`value` for
/// `value_cents`) would otherwise lose data silently.
fn object_has_unknown_field(object: &Map<String, Value>) -> Option<String> {
    const KNOWN: [&str; 6] = [
        "id",
        "backer_id",
        "project_id",
        "kind",
        "occurred_at",
        "value_cents",
    ];
    object
        .keys()
        .find(|key| !KNOWN.contains(&key.as_str()))
        .cloned()
}

fn bounded_text(field: &'static str, value: String) -> Result<String, ConversionError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(ConversionError::new(
            field,
            format!("is longer than {MAX_TEXT_BYTES} bytes"),
        ));
    }
    if value.contains('\0') {
        return Err(ConversionError::new(field, "may not contain NUL"));
    }
    Ok(value)
}

fn integer(field: &'static str, value: &str) -> Result<i64, ConversionError> {
    value.trim().parse::<i64>().map_err(|_| {
        ConversionError::new(field, format!("is not an integer: `{}`", excerpt(value)))
    })
}

fn time(value: &str, now_ms: i64) -> Result<DateTime<Utc>, ConversionError> {
    let time = DateTime::parse_from_rfc3339(value.trim())
        .map_err(|_| {
            ConversionError::new(
                "occurred_at",
                format!("is not an RFC 3339 time: `{}`", excerpt(value)),
            )
        })?
        .with_timezone(&Utc);
    let micros = time.timestamp_micros();
    if micros < EARLIEST_EVENT_MICROS {
        return Err(ConversionError::new("occurred_at", "is before 2000"));
    }
    if micros > now_ms.saturating_mul(1000) + MAX_AHEAD_OF_RECEIPT_MICROS {
        return Err(ConversionError::new(
            "occurred_at",
            "is more than a day in the future",
        ));
    }
    Ok(time)
}

/// At most 40 characters of a refused value, so an error never echoes a whole request.
fn excerpt(value: &str) -> String {
    value.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_764_000_000_000;

    fn report(body: &str) -> Result<Vec<Conversion>, ReportError> {
        parse_report(body.as_bytes(), NOW_MS)
    }

    const GOOD: &str = r#"{"id": "p-1", "backer_id": 42, "project_id": "7", "kind": "pledge",
        "occurred_at": "2025-11-24T10:00:00Z", "value_cents": 2500}"#;

    #[test]
    fn a_conversion_and_an_array_of_them_are_read() {
        let one = report(GOOD).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].backer_id, one[0].project_id), (42, 7));
        assert_eq!(one[0].value_cents, Some(2500));
        let two = report(&format!("[{GOOD}, {}]", GOOD.replace("p-1", "p-2"))).unwrap();
        assert_eq!(two[1].id, "p-2");
    }

    #[test]
    fn the_queued_body_reads_back_as_the_same_conversions() {
        let conversions = report(GOOD).unwrap();
        let body = report_body(&conversions);
        assert_eq!(report(&body).unwrap(), conversions);
    }

    #[test]
    fn each_bad_field_is_named() {
        for (field, body) in [
            ("id", GOOD.replace(r#""p-1""#, r#""""#)),
            ("backer_id", GOOD.replace("42", r#""forty""#)),
            ("project_id", GOOD.replace(r#""project_id": "7","#, "")),
            (
                "occurred_at",
                GOOD.replace("2025-11-24T10:00:00Z", "yesterday"),
            ),
            ("occurred_at", GOOD.replace("2025-11-24", "1999-01-01")),
            ("occurred_at", GOOD.replace("2025-11-24", "2030-01-01")),
            ("value_cents", GOOD.replace("2500", "-1")),
            ("kind", GOOD.replace("pledge", &"k".repeat(201))),
            ("body", GOOD.replace("value_cents", "value")),
        ] {
            let error = report(&body).unwrap_err();
            assert_eq!(error.field(), field, "{body}: {error}");
        }
        assert_eq!(report("[]").unwrap_err().field(), "body");
        assert_eq!(report("not json").unwrap_err().field(), "body");
        let many = format!("[{}]", vec![GOOD; 1001].join(","));
        assert_eq!(report(&many).unwrap_err().field(), "body");
    }

    #[test]
    fn text_fields_read_like_json() {
        let conversion = Conversion::from_text_fields(
            |field| match field {
                "id" => Some("p-1".to_owned()),
                "backer_id" => Some("42".to_owned()),
                "project_id" => Some("7".to_owned()),
                "kind" => Some("pledge".to_owned()),
                "occurred_at" => Some("2025-11-24T10:00:00Z".to_owned()),
                _ => None,
            },
            NOW_MS,
        )
        .unwrap();
        assert_eq!(conversion.value_cents, None);
        assert_eq!(conversion.occurred_at.timestamp(), 1_763_978_400);
    }
}
