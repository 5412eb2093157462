//! The provider-neutral event: what every provider's report of an email turns into.
//!
//! A provider module (today [`crate::mailgun`]) reads its wire formats into [`Event`]s and
//! decides each one's [`Effect`] on the message's row with its own rules (Mailgun's delivery codes
//! and reasons live in `mailgun/status.rs`). Everything downstream (the precedence rule in
//! [`crate::status`], the event key, triage, the store) reads only this type, so a second
//! provider is a new module, not a change to the status model.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::status::Effect;
use crate::variables::UserVariables;

/// An RFC 5322 Message-Id, trimmed and without one surrounding pair of `<>`.
///
/// Mailgun sends it bare in JSON webhooks and in `message-id`, but with brackets in the legacy
/// `Message-Id` field and in the send API's answer; both sides must agree on one spelling.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    /// Normalises a raw Message-Id; `None` when nothing is left.
    pub fn parse(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        let inner = trimmed
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix('>'))
            .unwrap_or(trimmed)
            .trim();
        if inner.is_empty() {
            None
        } else {
            Some(Self(inner.to_owned()))
        }
    }

    /// The normalised id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the provider called the event. The names are Mailgun's (current JSON names, plus the
/// legacy form names that have no JSON twin), which are also what the events table stores; what
/// an event *does* to its row is its [`Effect`], decided by the provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Mailgun accepted the message for delivery.
    Accepted,
    /// The recipient's server accepted the message.
    Delivered,
    /// JSON `failed`: a temporary or permanent failure, told apart by severity.
    Failed,
    /// Legacy `bounced`: a permanent failure reported by the recipient's server.
    Bounced,
    /// Legacy `dropped`: Mailgun gave up or never tried (suppressed or too old).
    Dropped,
    /// Mailgun refused the message at submission (Events API).
    Rejected,
    /// The recipient opened the message (tracking pixel).
    Opened,
    /// The recipient clicked a tracked link.
    Clicked,
    /// The recipient unsubscribed.
    Unsubscribed,
    /// The recipient reported the message as spam.
    Complained,
    /// An event name mailtrail does not know; kept, never guessed at.
    Other(String),
}

impl EventKind {
    /// Maps Mailgun's event name (case-insensitive) to a kind.
    pub fn from_name(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "accepted" => Self::Accepted,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "bounced" => Self::Bounced,
            "dropped" => Self::Dropped,
            "rejected" => Self::Rejected,
            "opened" => Self::Opened,
            "clicked" => Self::Clicked,
            "unsubscribed" => Self::Unsubscribed,
            "complained" => Self::Complained,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name stored in the events table.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Accepted => "accepted",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Bounced => "bounced",
            Self::Dropped => "dropped",
            Self::Rejected => "rejected",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Unsubscribed => "unsubscribed",
            Self::Complained => "complained",
            Self::Other(name) => name,
        }
    }
}

/// The severity of a `failed` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Mailgun will not try again.
    Permanent,
    /// Mailgun will retry for up to about 8 hours.
    Temporary,
}

impl Severity {
    /// Parses Mailgun's `severity`; unknown values are `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "permanent" => Some(Self::Permanent),
            "temporary" => Some(Self::Temporary),
            _ => None,
        }
    }

    /// The name stored in the events table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Temporary => "temporary",
        }
    }
}

/// One event, normalised. Fields a provider may omit are optional; validation of what mailtrail
/// requires (message id, recipient, custom variables) happens in [`crate::triage`].
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// What happened, as the provider named it.
    pub kind: EventKind,
    /// What the event does to its message's row, decided by the provider's rules.
    pub effect: Effect,
    /// The provider's event id (Mailgun's is unique within a day only); absent in legacy webhooks.
    pub event_id: Option<String>,
    /// When it happened, in microseconds since the epoch (the provider's time, not arrival time).
    pub occurred_at_micros: i64,
    /// The message the event is about.
    pub message_id: Option<MessageId>,
    /// The single recipient the event is about.
    pub recipient: Option<String>,
    /// `failed` events: permanent or temporary.
    pub severity: Option<Severity>,
    /// The provider's failure reason (Mailgun: `bounce`, `suppress-bounce`, `old`, ...).
    pub reason: Option<String>,
    /// SMTP or provider delivery code as text (`550`, `5.1.1`, `605`).
    pub delivery_code: Option<String>,
    /// A bounce that arrived after the message was delivered.
    pub delayed_bounce: bool,
    /// The message's Subject header, when the event carries it.
    pub subject: Option<String>,
    /// The provider's tags.
    pub tags: Vec<String>,
    /// Custom variables attached at send time.
    pub variables: UserVariables,
    /// The provider flagged the open or click as made by a machine (Mailgun: `client-info.bot`).
    pub bot: bool,
    /// Which machine, when the provider names it (Mailgun: `apple`, `gmail`, `generic`, ...).
    pub bot_kind: Option<String>,
    /// The clicked URL.
    pub url: Option<String>,
}

impl Event {
    /// A bare event of `kind` at `occurred_at_micros`, with no effect yet; the provider's parser
    /// (or a test) fills in the rest and decides the effect.
    pub fn new(kind: EventKind, occurred_at_micros: i64) -> Self {
        Self {
            kind,
            effect: Effect::None,
            event_id: None,
            occurred_at_micros,
            message_id: None,
            recipient: None,
            severity: None,
            reason: None,
            delivery_code: None,
            delayed_bounce: false,
            subject: None,
            tags: Vec::new(),
            variables: UserVariables::default(),
            bot: false,
            bot_kind: None,
            url: None,
        }
    }
}

/// Converts float seconds (Mailgun's clock) to whole microseconds (Mailgun sends up to 7 decimals; a
/// microsecond is what Postgres keeps).
pub fn seconds_to_micros(seconds: f64) -> Option<i64> {
    let micros = (seconds * 1_000_000.0).round();
    // Reject NaN, infinities and anything outside what a timestamptz can hold.
    if micros.is_finite() && micros.abs() < 9.0e18 {
        Some(micros as i64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_lose_one_pair_of_brackets_and_whitespace() {
        assert_eq!(
            MessageId::parse(" <20160421175529.19495@example.com> ")
                .unwrap()
                .as_str(),
            "20160421175529.19495@example.com"
        );
        assert_eq!(MessageId::parse("abc@x").unwrap().as_str(), "abc@x");
        assert_eq!(MessageId::parse("<<a@b>>").unwrap().as_str(), "<a@b>");
        assert_eq!(MessageId::parse(" <> "), None);
        assert_eq!(MessageId::parse(""), None);
    }

    #[test]
    fn event_names_map_to_kinds_and_back() {
        for name in [
            "accepted",
            "delivered",
            "failed",
            "bounced",
            "dropped",
            "rejected",
            "opened",
            "clicked",
            "unsubscribed",
            "complained",
            "list_member_uploaded",
        ] {
            assert_eq!(EventKind::from_name(name).as_str(), name);
        }
        assert_eq!(EventKind::from_name("Delivered"), EventKind::Delivered);
        assert!(matches!(
            EventKind::from_name("stored"),
            EventKind::Other(_)
        ));
    }

    #[test]
    fn seconds_become_rounded_microseconds() {
        assert_eq!(
            seconds_to_micros(1770146431.6585283),
            Some(1_770_146_431_658_528)
        );
        assert_eq!(seconds_to_micros(1.0), Some(1_000_000));
        assert_eq!(seconds_to_micros(f64::NAN), None);
        assert_eq!(seconds_to_micros(1e300), None);
    }
}
