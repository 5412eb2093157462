//! Any bytes posted as `multipart/form-data` (legacy webhooks with attachments): the receiver's
//! signature read and the worker's full parse must return an error or an event, never panic.
//!
//! A body that starts with `--` names its own boundary on its first line, as a real post does,
//! so the fuzzer can invent boundaries; any other body is read with the boundary of the corpus
//! sample, so mutations of real-looking bodies stay meaningful.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtrail_core::event_key::event_key;
use mailtrail_core::mailgun::{WebhookFormat, parse_event, read_signature};
use mailtrail_core::status::StatusClaim;

const SAMPLE_BOUNDARY: &str = "353d603f-eede-4b49-97ac-724fbc54ea3c";

fuzz_target!(|body: &[u8]| {
    let boundary = body
        .strip_prefix(b"--")
        .and_then(|rest| rest.split(|&b| b == b'\r' || b == b'\n').next())
        .filter(|line| !line.is_empty() && line.len() <= 70)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .unwrap_or_else(|| SAMPLE_BOUNDARY.to_owned());
    let format = WebhookFormat::Multipart { boundary };
    let _ = read_signature(&format, body);
    if let Ok(event) = parse_event(&format, body, 0) {
        let _ = StatusClaim::of(&event);
        let _ = event_key(&event);
    }
});
