//! Delivery status and the precedence rule that makes it order-independent.
//!
//! Mailgun delivers events out of order and more than once, so a row's status is never "the last
//! event seen". Each event makes a *claim*; the claim that ranks highest wins, where rank is
//!
//! ```text
//! (tier, explicit, event time, status name, reason, code)
//! tier: accepted 0 < deferred 1 < delivered 2 < bounced = dropped 3 < complained 4
//! ```
//!
//! Opens, clicks and unsubscribes claim an *implied* `delivered` (explicit = false), so a real
//! `delivered` event always replaces it and the row ends the same whichever came first. The
//! remaining fields only break ties, so equal claims cannot leave the row depending on order.
//! [`MessageState::apply`] is the reference implementation; the store's batched SQL upsert
//! mirrors it and is tested against it.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::event::{EventKind, MailgunEvent, Severity};

/// The delivery status of one message to one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryStatus {
    /// Mailgun accepted it; nothing more is known yet.
    Accepted,
    /// A temporary failure; Mailgun is still retrying.
    Deferred,
    /// The recipient's server took it.
    Delivered,
    /// The recipient's server refused it (including a bounce after delivery).
    Bounced,
    /// Mailgun did not deliver it: suppressed, too old, or rejected.
    Dropped,
    /// The recipient reported it as spam.
    Complained,
}

impl DeliveryStatus {
    /// Every status, in precedence order.
    pub const ALL: [Self; 6] = [
        Self::Accepted,
        Self::Deferred,
        Self::Delivered,
        Self::Bounced,
        Self::Dropped,
        Self::Complained,
    ];

    /// The precedence tier; bounced and dropped share one and are decided by event time.
    pub fn tier(self) -> i16 {
        match self {
            Self::Accepted => 0,
            Self::Deferred => 1,
            Self::Delivered => 2,
            Self::Bounced | Self::Dropped => 3,
            Self::Complained => 4,
        }
    }

    /// The name stored in Postgres and shown by `mailtrail stats`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Deferred => "deferred",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Dropped => "dropped",
            Self::Complained => "complained",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of mailtrail's.
#[derive(Debug, thiserror::Error)]
#[error("unknown delivery status `{0}`")]
pub struct UnknownStatus(String);

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| UnknownStatus(name.to_owned()))
    }
}

/// What an engagement event records besides its implied `delivered`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engagement {
    /// An open; `bot` when Mailgun attributed it to a machine (Apple MPP, Gmail proxy, scanner).
    Opened {
        /// Made by a machine, counted apart.
        bot: bool,
    },
    /// A click on a tracked link.
    Clicked,
    /// An unsubscribe.
    Unsubscribed,
}

impl Engagement {
    /// The name stored in the events table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened { .. } => "opened",
            Self::Clicked => "clicked",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

/// What an event does to its message's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// It claims a delivery status.
    Status(DeliveryStatus),
    /// It is an engagement, which implies at least `delivered`.
    Engagement(Engagement),
    /// It does not touch the row (unknown event kinds); it is still kept in the events table.
    None,
}

/// Delivery codes Mailgun uses for messages it never attempted because the address is suppressed
/// (605 bounced before, 606 unsubscribed, 607 complained, 625 poor list quality).
const SUPPRESSION_CODES: [&str; 4] = ["605", "606", "607", "625"];

/// The mapping table of `docs/status-mapping.md`: what a Mailgun event means for the row.
pub fn effect_of(event: &MailgunEvent) -> Effect {
    let reason = event.reason.as_deref().map(str::to_ascii_lowercase);
    let reason = reason.as_deref();
    let suppressed = reason.is_some_and(|reason| reason.starts_with("suppress-"))
        || event
            .delivery_code
            .as_deref()
            .is_some_and(|code| SUPPRESSION_CODES.contains(&code));
    match &event.kind {
        EventKind::Accepted => Effect::Status(DeliveryStatus::Accepted),
        EventKind::Delivered => Effect::Status(DeliveryStatus::Delivered),
        EventKind::Complained => Effect::Status(DeliveryStatus::Complained),
        EventKind::Dropped | EventKind::Rejected => Effect::Status(DeliveryStatus::Dropped),
        EventKind::Bounced => Effect::Status(if suppressed {
            DeliveryStatus::Dropped
        } else {
            DeliveryStatus::Bounced
        }),
        EventKind::Failed => {
            // `old` is Mailgun giving up after ~8 h of retries; it is final even when sent with
            // severity temporary.
            if reason == Some("old") {
                return Effect::Status(DeliveryStatus::Dropped);
            }
            match event.severity {
                Some(Severity::Temporary) => Effect::Status(DeliveryStatus::Deferred),
                // A failure without severity is treated as permanent: Mailgun always sends it,
                // and guessing "temporary" would leave a dead message looking alive.
                Some(Severity::Permanent) | None if suppressed => {
                    Effect::Status(DeliveryStatus::Dropped)
                }
                Some(Severity::Permanent) | None => Effect::Status(DeliveryStatus::Bounced),
            }
        }
        EventKind::Opened => Effect::Engagement(Engagement::Opened { bot: event.bot }),
        EventKind::Clicked => Effect::Engagement(Engagement::Clicked),
        EventKind::Unsubscribed => Effect::Engagement(Engagement::Unsubscribed),
        EventKind::Other(_) => Effect::None,
    }
}

/// The status an event claims for its row, with everything that ranks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusClaim {
    /// The claimed status.
    pub status: DeliveryStatus,
    /// False for the `delivered` implied by an engagement.
    pub explicit: bool,
    /// The event's time in microseconds.
    pub at_micros: i64,
    /// The failure reason carried along with the status.
    pub reason: Option<String>,
    /// The delivery code carried along with the status.
    pub delivery_code: Option<String>,
}

impl StatusClaim {
    /// The claim `event` makes, if any.
    pub fn of(event: &MailgunEvent) -> Option<Self> {
        let (status, explicit) = match effect_of(event) {
            Effect::Status(status) => (status, true),
            Effect::Engagement(_) => (DeliveryStatus::Delivered, false),
            Effect::None => return None,
        };
        Some(Self {
            status,
            explicit,
            at_micros: event.occurred_at_micros,
            reason: if explicit { event.reason.clone() } else { None },
            delivery_code: if explicit {
                event.delivery_code.clone()
            } else {
                None
            },
        })
    }

    /// Orders claims by precedence; the store's SQL compares the same tuple.
    pub fn rank_cmp(&self, other: &Self) -> Ordering {
        let key = |claim: &Self| {
            (
                claim.status.tier(),
                claim.explicit,
                claim.at_micros,
                claim.status.as_str(),
                claim.reason.clone().unwrap_or_default(),
                claim.delivery_code.clone().unwrap_or_default(),
            )
        };
        key(self).cmp(&key(other))
    }
}

/// Opens, clicks and unsubscribes seen for one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngagementSummary {
    /// Human opens.
    pub opened_count: i64,
    /// Opens Mailgun attributed to a machine.
    pub bot_open_count: i64,
    /// First human open.
    pub first_opened_at: Option<i64>,
    /// Last human open.
    pub last_opened_at: Option<i64>,
    /// Clicks.
    pub clicked_count: i64,
    /// First click.
    pub first_clicked_at: Option<i64>,
    /// Last click.
    pub last_clicked_at: Option<i64>,
    /// First unsubscribe.
    pub unsubscribed_at: Option<i64>,
}

/// The state of one (message, recipient) row, built by applying events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageState {
    /// The winning status claim.
    pub status: Option<StatusClaim>,
    /// Engagement counters and times.
    pub engagement: EngagementSummary,
    /// Latest event time seen.
    pub last_event_at: Option<i64>,
    /// Distinct events applied.
    pub event_count: i64,
    seen: HashSet<String>,
}

impl MessageState {
    /// Applies one event identified by `event_key`; an event already applied changes nothing.
    pub fn apply(&mut self, event_key: &str, event: &MailgunEvent) {
        let Some(claim) = StatusClaim::of(event) else {
            return;
        };
        if !self.seen.insert(event_key.to_owned()) {
            return;
        }
        let at = event.occurred_at_micros;
        self.event_count += 1;
        self.last_event_at = Some(self.last_event_at.map_or(at, |last| last.max(at)));
        let summary = &mut self.engagement;
        match effect_of(event) {
            Effect::Engagement(Engagement::Opened { bot: true }) => summary.bot_open_count += 1,
            Effect::Engagement(Engagement::Opened { bot: false }) => {
                summary.opened_count += 1;
                summary.first_opened_at = Some(summary.first_opened_at.map_or(at, |t| t.min(at)));
                summary.last_opened_at = Some(summary.last_opened_at.map_or(at, |t| t.max(at)));
            }
            Effect::Engagement(Engagement::Clicked) => {
                summary.clicked_count += 1;
                summary.first_clicked_at = Some(summary.first_clicked_at.map_or(at, |t| t.min(at)));
                summary.last_clicked_at = Some(summary.last_clicked_at.map_or(at, |t| t.max(at)));
            }
            Effect::Engagement(Engagement::Unsubscribed) => {
                summary.unsubscribed_at = Some(summary.unsubscribed_at.map_or(at, |t| t.min(at)));
            }
            Effect::Status(_) | Effect::None => {}
        }
        let replace = match &self.status {
            None => true,
            Some(current) => claim.rank_cmp(current) == Ordering::Greater,
        };
        if replace {
            self.status = Some(claim);
        }
    }

    /// The current status, if any event claimed one.
    pub fn delivery_status(&self) -> Option<DeliveryStatus> {
        self.status.as_ref().map(|claim| claim.status)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::EventKind;

    fn event(kind: EventKind, at: i64) -> MailgunEvent {
        MailgunEvent::new(kind, at)
    }

    fn failed(severity: Option<Severity>, reason: &str, code: &str) -> MailgunEvent {
        let mut event = event(EventKind::Failed, 1);
        event.severity = severity;
        event.reason = Some(reason.to_owned());
        event.delivery_code = Some(code.to_owned());
        event
    }

    #[test]
    fn failures_map_by_severity_reason_and_code() {
        use DeliveryStatus::*;
        let permanent = Some(Severity::Permanent);
        let temporary = Some(Severity::Temporary);
        let cases = [
            (failed(permanent, "bounce", "550"), Bounced),
            (failed(permanent, "suppress-bounce", "605"), Dropped),
            (failed(permanent, "suppress-unsubscribe", "606"), Dropped),
            (failed(permanent, "suppress-complaint", "607"), Dropped),
            (failed(permanent, "generic", "625"), Dropped),
            (failed(permanent, "generic", "5.1.1"), Bounced),
            (failed(permanent, "old", "498"), Dropped),
            (failed(temporary, "old", "498"), Dropped),
            (failed(temporary, "generic", "452"), Deferred),
            (failed(temporary, "greylisted", "450"), Deferred),
            (failed(None, "bounce", "550"), Bounced),
        ];
        for (event, expected) in cases {
            assert_eq!(
                effect_of(&event),
                Effect::Status(expected),
                "{:?} {:?} {:?}",
                event.severity,
                event.reason,
                event.delivery_code
            );
        }
    }

    #[test]
    fn engagement_implies_delivered_but_never_lowers_a_bounce() {
        let mut state = MessageState::default();
        let mut bounce = event(EventKind::Failed, 10);
        bounce.severity = Some(Severity::Permanent);
        state.apply("b", &bounce);
        state.apply("o", &event(EventKind::Opened, 20));
        assert_eq!(state.delivery_status(), Some(DeliveryStatus::Bounced));
        assert_eq!(state.engagement.opened_count, 1);

        let mut state = MessageState::default();
        state.apply("a", &event(EventKind::Accepted, 1));
        state.apply("c", &event(EventKind::Clicked, 5));
        assert_eq!(state.delivery_status(), Some(DeliveryStatus::Delivered));
        assert!(!state.status.as_ref().unwrap().explicit);
    }

    #[test]
    fn a_delayed_bounce_after_delivery_wins() {
        let mut state = MessageState::default();
        state.apply("d", &event(EventKind::Delivered, 10));
        let mut bounce = event(EventKind::Failed, 99);
        bounce.severity = Some(Severity::Permanent);
        bounce.delayed_bounce = true;
        state.apply("b", &bounce);
        assert_eq!(state.delivery_status(), Some(DeliveryStatus::Bounced));
    }

    #[test]
    fn unknown_kinds_leave_the_row_alone() {
        let mut state = MessageState::default();
        state.apply("x", &event(EventKind::Other("stored".into()), 1));
        assert_eq!(state, MessageState::default());
    }

    fn arbitrary_event() -> impl Strategy<Value = MailgunEvent> {
        let kind = prop_oneof![
            Just(EventKind::Accepted),
            Just(EventKind::Delivered),
            Just(EventKind::Failed),
            Just(EventKind::Bounced),
            Just(EventKind::Dropped),
            Just(EventKind::Opened),
            Just(EventKind::Clicked),
            Just(EventKind::Unsubscribed),
            Just(EventKind::Complained),
            Just(EventKind::Other("stored".into())),
        ];
        let severity = prop_oneof![
            Just(None),
            Just(Some(Severity::Permanent)),
            Just(Some(Severity::Temporary))
        ];
        let reason = prop::option::of(prop_oneof![
            Just("bounce".to_owned()),
            Just("suppress-bounce".to_owned()),
            Just("old".to_owned()),
            Just("generic".to_owned()),
        ]);
        let code = prop::option::of(prop_oneof![
            Just("550".to_owned()),
            Just("605".to_owned()),
            Just("452".to_owned())
        ]);
        // Few distinct times, so ties are common and the tie-breaks are exercised.
        (kind, 0i64..4, severity, reason, code, any::<bool>()).prop_map(
            |(kind, at, severity, reason, delivery_code, bot)| {
                let mut event = MailgunEvent::new(kind, at * 1_000_000);
                event.severity = severity;
                event.reason = reason;
                event.delivery_code = delivery_code;
                event.bot = bot;
                event
            },
        )
    }

    proptest! {
        #[test]
        fn status_is_the_same_in_any_event_order_and_with_duplicates(
            events in prop::collection::vec(arbitrary_event(), 1..12),
            seed in any::<u64>(),
            duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let keyed: Vec<(String, MailgunEvent)> = events
                .into_iter()
                .enumerate()
                .map(|(i, event)| (format!("event-{i}"), event))
                .collect();
            let mut in_order = MessageState::default();
            for (key, event) in &keyed {
                in_order.apply(key, event);
            }

            // Shuffle deterministically from the seed and re-deliver some events again.
            let mut shuffled = keyed.clone();
            for index in &duplicates {
                shuffled.push(index.get(&keyed).clone());
            }
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = (state >> 33) as usize % (i + 1);
                shuffled.swap(i, j);
            }
            let mut reordered = MessageState::default();
            for (key, event) in &shuffled {
                reordered.apply(key, event);
            }
            prop_assert_eq!(in_order, reordered);
        }
    }
}
