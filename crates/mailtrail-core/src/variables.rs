//! Custom variables (`user-variables` in JSON, top-level fields in legacy forms).
//!
//! Mailgun is loose with them: the map may be an object, an empty array (`[]`, a PHP-style empty
//! map), an error string, or absent; values usually arrive as strings (`"42"`), sometimes JSON
//! encoded twice (`"\"42\""`), and batch sends leave placeholders (`"%recipient.backer_id%"`)
//! where a recipient had no value. Everything here treats those shapes as data, never as errors.

use serde_json::{Map, Value};

/// The custom variables of one event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserVariables(Map<String, Value>);

/// Why a variable that is present could not be read as the type asked for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariableError {
    /// The value is present but not an integer.
    #[error("custom variable `{name}` is not an integer")]
    NotAnInteger {
        /// The variable's name.
        name: String,
    },
}

impl UserVariables {
    /// Builds the map from whatever Mailgun sent as `user-variables`; anything but an object
    /// (an empty array, Mailgun's "Could not load user-variables" string, null) is empty.
    pub fn from_json(value: Option<Value>) -> Self {
        match value {
            Some(Value::Object(map)) => Self(map),
            Some(Value::String(text)) => {
                // Some senders put the whole map in as a JSON string.
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => Self(map),
                    _ => Self::default(),
                }
            }
            _ => Self::default(),
        }
    }

    /// Wraps an already built map.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// Inserts `name` unless it is already set (the first value wins, as in legacy forms).
    pub fn insert_if_absent(&mut self, name: &str, value: Value) {
        if !self.0.contains_key(name) {
            self.0.insert(name.to_owned(), value);
        }
    }

    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Reads `name` as an integer: numbers, integral strings (`"42"`, `" 42 "`) and strings that
    /// hold a JSON-encoded integer (`"\"42\""`). Absent, null, empty and placeholder values are
    /// `Ok(None)`.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, VariableError> {
        let invalid = || VariableError::NotAnInteger {
            name: name.to_owned(),
        };
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number_to_integer(number).map(Some).ok_or_else(invalid),
            Some(Value::String(text)) => match unwrap_text(text) {
                None => Ok(None),
                Some(text) => text_to_integer(&text).map(Some).ok_or_else(invalid),
            },
            Some(_) => Err(invalid()),
        }
    }

    /// Reads `name` as text: strings (one layer of JSON quoting removed) and numbers. Absent,
    /// null, empty and placeholder values are `None`.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(text) => unwrap_text(text),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

/// Trims, drops placeholders and empties, and removes one layer of JSON string encoding.
fn unwrap_text(raw: &str) -> Option<String> {
    let mut text = raw.trim();
    let decoded;
    if text.len() >= 2
        && text.starts_with('"')
        && text.ends_with('"')
        && let Ok(Value::String(inner)) = serde_json::from_str::<Value>(text)
    {
        decoded = inner;
        text = decoded.trim();
    }
    if text.is_empty() || is_placeholder(text) {
        None
    } else {
        Some(text.to_owned())
    }
}

/// Reads an integer written as text: `42`, or `42.0` from senders that only have floats.
fn text_to_integer(text: &str) -> Option<i64> {
    if let Ok(integer) = text.parse::<i64>() {
        return Some(integer);
    }
    let number = serde_json::from_str::<serde_json::Number>(text).ok()?;
    number_to_integer(&number)
}

/// `%recipient.backer_id%` and `%recipient.v:backer_id%`: what Mailgun leaves when a batch
/// send's recipient-variables had no value for this recipient.
fn is_placeholder(text: &str) -> bool {
    text.len() > 2 && text.starts_with("%recipient") && text.ends_with('%')
}

fn number_to_integer(number: &serde_json::Number) -> Option<i64> {
    if let Some(integer) = number.as_i64() {
        return Some(integer);
    }
    let float = number.as_f64()?;
    // 42.0 is an integer written by a sender that only has floats (JavaScript, PHP).
    if float.fract() == 0.0 && float.abs() < 9.0e15 {
        Some(float as i64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars(value: Value) -> UserVariables {
        UserVariables::from_json(Some(value))
    }

    #[test]
    fn integers_arrive_in_every_shape_mailgun_uses() {
        let v = vars(json!({
            "number": 42, "string": "42", "padded": " 42 ", "double": "\"42\"",
            "float": 42.0, "placeholder": "%recipient.backer_id%", "empty": "", "null": null,
            "words": "forty-two", "fraction": 4.5, "bool": true, "array": [1]
        }));
        assert_eq!(v.integer("number"), Ok(Some(42)));
        assert_eq!(v.integer("string"), Ok(Some(42)));
        assert_eq!(v.integer("padded"), Ok(Some(42)));
        assert_eq!(v.integer("double"), Ok(Some(42)));
        assert_eq!(v.integer("float"), Ok(Some(42)));
        assert_eq!(v.integer("placeholder"), Ok(None));
        assert_eq!(v.integer("empty"), Ok(None));
        assert_eq!(v.integer("null"), Ok(None));
        assert_eq!(v.integer("missing"), Ok(None));
        for bad in ["words", "fraction", "bool", "array"] {
            assert!(
                v.integer(bad).is_err(),
                "{bad} should not read as an integer"
            );
        }
    }

    #[test]
    fn maps_in_odd_shapes_are_empty_or_decoded() {
        assert!(UserVariables::from_json(Some(json!([]))).is_empty());
        assert!(UserVariables::from_json(None).is_empty());
        assert!(
            UserVariables::from_json(Some(json!(
                "Could not load user-variables. They were either truncated or invalid JSON"
            )))
            .is_empty()
        );
        let encoded = UserVariables::from_json(Some(json!("{\"backer_id\": \"7\"}")));
        assert_eq!(encoded.integer("backer_id"), Ok(Some(7)));
    }

    #[test]
    fn text_drops_one_layer_of_quoting_and_placeholders() {
        let v = vars(json!({
            "subject": "Your pledge", "quoted": "\"Test Contact\"", "n": 7,
            "placeholder": "%recipient.subject%", "blank": "  "
        }));
        assert_eq!(v.text("subject").as_deref(), Some("Your pledge"));
        assert_eq!(v.text("quoted").as_deref(), Some("Test Contact"));
        assert_eq!(v.text("n").as_deref(), Some("7"));
        assert_eq!(v.text("placeholder"), None);
        assert_eq!(v.text("blank"), None);
    }
}
