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
//!
//! Nothing here knows a provider: an event arrives with its [`Effect`] already decided by its
//! provider's module (Mailgun's codes and reasons are mapped in `mailgun/status.rs`).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::event::Event;

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
    /// A click on a tracked link; `bot` when Mailgun attributed it to a machine (link scanners
    /// and security gateways follow links too).
    Clicked {
        /// Made by a machine, counted apart.
        bot: bool,
    },
    /// An unsubscribe.
    Unsubscribed,
}

impl Engagement {
    /// The name stored in the events table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened { .. } => "opened",
            Self::Clicked { .. } => "clicked",
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
    pub fn of(event: &Event) -> Option<Self> {
        let (status, explicit) = match event.effect {
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
    /// Human clicks.
    pub clicked_count: i64,
    /// Clicks Mailgun attributed to a machine.
    pub bot_click_count: i64,
    /// First human click.
    pub first_clicked_at: Option<i64>,
    /// Last human click.
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
    /// Earliest event time seen: the message's day in the statistics.
    pub first_event_at: Option<i64>,
    /// Latest event time seen.
    pub last_event_at: Option<i64>,
    /// Distinct events applied.
    pub event_count: i64,
    seen: HashSet<String>,
}

impl MessageState {
    /// Applies one event identified by `event_key`; an event already applied changes nothing.
    pub fn apply(&mut self, event_key: &str, event: &Event) {
        let Some(claim) = StatusClaim::of(event) else {
            return;
        };
        if !self.seen.insert(event_key.to_owned()) {
            return;
        }
        let at = event.occurred_at_micros;
        self.event_count += 1;
        self.first_event_at = Some(self.first_event_at.map_or(at, |first| first.min(at)));
        self.last_event_at = Some(self.last_event_at.map_or(at, |last| last.max(at)));
        let summary = &mut self.engagement;
        match event.effect {
            Effect::Engagement(Engagement::Opened { bot: true }) => summary.bot_open_count += 1,
            Effect::Engagement(Engagement::Opened { bot: false }) => {
                summary.opened_count += 1;
                summary.first_opened_at = Some(summary.first_opened_at.map_or(at, |t| t.min(at)));
                summary.last_opened_at = Some(summary.last_opened_at.map_or(at, |t| t.max(at)));
            }
            Effect::Engagement(Engagement::Clicked { bot: true }) => summary.bot_click_count += 1,
            Effect::Engagement(Engagement::Clicked { bot: false }) => {
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

    fn event(effect: Effect, at: i64) -> Event {
        let mut event = Event::new(EventKind::Other("test".into()), at);
        event.effect = effect;
        event
    }

    fn status(status: DeliveryStatus, at: i64) -> Event {
        event(Effect::Status(status), at)
    }

    #[test]
    fn engagement_implies_delivered_but_never_lowers_a_bounce() {
        let mut state = MessageState::default();
        state.apply("b", &status(DeliveryStatus::Bounced, 10));
        state.apply(
            "o",
            &event(Effect::Engagement(Engagement::Opened { bot: false }), 20),
        );
        assert_eq!(state.delivery_status(), Some(DeliveryStatus::Bounced));
        assert_eq!(state.engagement.opened_count, 1);

        let mut state = MessageState::default();
        state.apply("a", &status(DeliveryStatus::Accepted, 1));
        state.apply(
            "c",
            &event(Effect::Engagement(Engagement::Clicked { bot: false }), 5),
        );
        assert_eq!(state.delivery_status(), Some(DeliveryStatus::Delivered));
        assert!(!state.status.as_ref().unwrap().explicit);
    }

    #[test]
    fn a_bounce_after_delivery_wins() {
        let mut state = MessageState::default();
        state.apply("d", &status(DeliveryStatus::Delivered, 10));
        state.apply("b", &status(DeliveryStatus::Bounced, 99));
        assert_eq!(state.delivery_status(), Some(DeliveryStatus::Bounced));
    }

    #[test]
    fn events_without_an_effect_leave_the_row_alone() {
        let mut state = MessageState::default();
        state.apply("x", &event(Effect::None, 1));
        assert_eq!(state, MessageState::default());
    }

    fn arbitrary_effect() -> impl Strategy<Value = Effect> {
        prop_oneof![
            prop::sample::select(DeliveryStatus::ALL.to_vec()).prop_map(Effect::Status),
            any::<bool>().prop_map(|bot| Effect::Engagement(Engagement::Opened { bot })),
            any::<bool>().prop_map(|bot| Effect::Engagement(Engagement::Clicked { bot })),
            Just(Effect::Engagement(Engagement::Unsubscribed)),
            Just(Effect::None),
        ]
    }

    fn arbitrary_event() -> impl Strategy<Value = Event> {
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
        (arbitrary_effect(), 0i64..4, reason, code).prop_map(
            |(effect, at, reason, delivery_code)| {
                let mut event = event(effect, at * 1_000_000);
                event.reason = reason;
                event.delivery_code = delivery_code;
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
            let keyed: Vec<(String, Event)> = events
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
