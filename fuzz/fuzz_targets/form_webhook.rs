//! Any bytes posted as `application/x-www-form-urlencoded` (legacy webhooks): the receiver's
//! signature read and the worker's full parse must return an error or an event, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtrail_core::event_key::event_key;
use mailtrail_core::mailgun::{WebhookFormat, parse_event, read_signature};
use mailtrail_core::status::StatusClaim;

fuzz_target!(|body: &[u8]| {
    let format = WebhookFormat::FormUrlEncoded;
    let _ = read_signature(&format, body);
    if let Ok(event) = parse_event(&format, body, 0) {
        let _ = StatusClaim::of(&event);
        let _ = event_key(&event);
    }
});
