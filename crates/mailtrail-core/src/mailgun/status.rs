//! Mailgun's meaning of an event for its row: the mapping table of `docs/status-mapping.md`.
//!
//! This is the only place that knows Mailgun's delivery codes (605, 606, 607 and 625 for
//! suppressed addresses) and reasons (`old`, `suppress-*`). The parsers call [`effect_of`] once an
//! event is read, so the [`Event`] that leaves this module carries its [`Effect`] and the
//! precedence rule in [`crate::status`] never needs to know where it came from.

use crate::event::{Event, EventKind, Severity};
use crate::status::{DeliveryStatus, Effect, Engagement};

/// Delivery codes Mailgun uses for messages it never attempted because the address is suppressed
/// (605 bounced before, 606 unsubscribed, 607 complained, 625 poor list quality).
const SUPPRESSION_CODES: [&str; 4] = ["605", "606", "607", "625"];

/// What a Mailgun event means for its row, from its kind, severity, reason and code.
pub fn effect_of(event: &Event) -> Effect {
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
        EventKind::Clicked => Effect::Engagement(Engagement::Clicked { bot: event.bot }),
        EventKind::Unsubscribed => Effect::Engagement(Engagement::Unsubscribed),
        EventKind::Other(_) => Effect::None,
    }
}

/// `event` with its effect decided by Mailgun's rules: what the parsers return, and what tests
/// that build a Mailgun event by hand use to finish it.
pub fn mapped(mut event: Event) -> Event {
    event.effect = effect_of(&event);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(severity: Option<Severity>, reason: &str, code: &str) -> Event {
        let mut event = Event::new(EventKind::Failed, 1);
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
    fn a_delayed_bounce_after_delivery_is_a_bounce() {
        let mut bounce = failed(Some(Severity::Permanent), "bounce", "550");
        bounce.delayed_bounce = true;
        assert_eq!(effect_of(&bounce), Effect::Status(DeliveryStatus::Bounced));
    }

    #[test]
    fn unknown_kinds_have_no_effect_and_bot_opens_are_marked() {
        let other = Event::new(EventKind::Other("stored".into()), 1);
        assert_eq!(effect_of(&other), Effect::None);
        let mut open = Event::new(EventKind::Opened, 1);
        open.bot = true;
        assert_eq!(
            mapped(open).effect,
            Effect::Engagement(Engagement::Opened { bot: true })
        );
    }
}
