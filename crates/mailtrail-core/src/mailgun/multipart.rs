//! Legacy `multipart/form-data` webhooks (bounces and drops that carried attachments).
//!
//! When the recipient's server returned the message in its bounce, legacy Mailgun switched the
//! whole post to multipart and attached it as `attachment-1`, `attachment-2`, ... file parts.
//! The other parts are exactly the fields of the urlencoded form, so this file only splits the
//! body into `(name, value)` pairs and hands them to `LegacyFields`, which applies the same
//! first-value/last-signature rules.
//!
//! The body is already fully in memory, so a small splitter over the bytes is all that is
//! needed: it borrows every text value and never copies a file part, which can be far larger
//! than the event. It is lenient where senders differ and strict where a mistake would
//! silently lose fields:
//!
//! - Line breaks may be CRLF (the wire format) or bare LF (what test fixtures, including the
//!   corpus sample, often contain); both are accepted anywhere.
//! - A line that merely starts with the delimiter is content, not a boundary.
//! - A body without an opening or closing delimiter is refused as [`ParseError::InvalidForm`]:
//!   a truncated post may have lost the signature or the event, and guessing would be worse.
//! - Parts without a `Content-Disposition` name are ignored, and values that are not UTF-8 get
//!   U+FFFD, as in the urlencoded form.
//! - A body of more than [`MAX_FORM_FIELDS`] parts is refused, as a form with that many fields
//!   is; every step here is linear in the body.

use std::borrow::Cow;

use super::form::{LegacyFields, too_many_fields};
use super::{MAX_FORM_FIELDS, ParseError, WebhookSignature};
use crate::event::Event;
use crate::excerpt::Excerpt;

/// Pulls the signed fields out of a multipart legacy webhook.
pub fn read_signature(body: &[u8], boundary: &str) -> Result<WebhookSignature, ParseError> {
    fields(body, boundary)?.signature()
}

/// Reads a multipart legacy event.
pub fn parse_event(body: &[u8], boundary: &str, fallback_micros: i64) -> Result<Event, ParseError> {
    fields(body, boundary)?.event(fallback_micros)
}

/// The body rebuilt without its file parts, for queuing.
///
/// Legacy bounces attach the returned message as `attachment-N` file parts, which can be
/// megabytes and never matter for delivery status. The receiver queues this instead of the raw
/// body, so an attachment is held once (as received) and never copied into Redis. The text parts
/// are kept byte for byte, in order, between CRLF delimiters, so the result reads exactly like
/// the original everywhere but the attachments.
pub fn without_file_parts(body: &[u8], boundary: &str) -> Result<Vec<u8>, ParseError> {
    let parts = split_parts(body, boundary)?;
    let delimiter = format!("--{boundary}");
    let kept: Vec<&[u8]> = parts
        .into_iter()
        .filter(|part| !is_file_part(part))
        .collect();
    let size = kept
        .iter()
        .map(|part| part.len() + delimiter.len() + 4)
        .sum::<usize>();
    let mut rebuilt = Vec::with_capacity(size + delimiter.len() + 4);
    for part in kept {
        rebuilt.extend_from_slice(delimiter.as_bytes());
        rebuilt.extend_from_slice(b"\r\n");
        rebuilt.extend_from_slice(part);
        rebuilt.extend_from_slice(b"\r\n");
    }
    rebuilt.extend_from_slice(delimiter.as_bytes());
    rebuilt.extend_from_slice(b"--\r\n");
    Ok(rebuilt)
}

/// True for a part with a filename (an attachment).
fn is_file_part(part: &[u8]) -> bool {
    let (headers, _) = split_headers(part);
    content_disposition(&String::from_utf8_lossy(headers)).is_some_and(|disposition| {
        parameters(&disposition).iter().any(|(name, _)| {
            name.eq_ignore_ascii_case("filename") || name.eq_ignore_ascii_case("filename*")
        })
    })
}

/// The text fields of the body in order; file parts are skipped.
fn fields<'a>(body: &'a [u8], boundary: &str) -> Result<LegacyFields<'a>, ParseError> {
    LegacyFields::collect(
        split_parts(body, boundary)?
            .into_iter()
            .filter_map(text_field),
    )
}

/// What follows a `--boundary` at the start of a line.
#[derive(Debug, PartialEq, Eq)]
enum Delimiter {
    /// Another part begins at this offset (just after the delimiter line's line break).
    Part(usize),
    /// `--boundary--`: the last part has ended.
    Close,
}

/// Reads the delimiter line starting at `at`, if there is one: `--boundary--`, or
/// `--boundary` followed by optional spaces and a line break. Anything else at `at` is content
/// that happens to start with the same characters.
fn delimiter_at(body: &[u8], at: usize, delimiter: &[u8]) -> Option<Delimiter> {
    let rest = body.get(at..)?.strip_prefix(delimiter)?;
    if rest.starts_with(b"--") {
        return Some(Delimiter::Close);
    }
    // RFC 2046 allows transport padding (whitespace) before the line break.
    let padding = rest
        .iter()
        .take_while(|&&byte| byte == b' ' || byte == b'\t')
        .count();
    let after = rest.get(padding..)?;
    let line_break = if after.starts_with(b"\r\n") {
        2
    } else if after.starts_with(b"\n") {
        1
    } else {
        return None;
    };
    Some(Delimiter::Part(at + delimiter.len() + padding + line_break))
}

/// The first delimiter line at or after `from` that starts just after a line break, with the
/// offset of that line break.
fn next_delimiter(body: &[u8], from: usize, delimiter: &[u8]) -> Option<(usize, Delimiter)> {
    let mut search = from;
    loop {
        let newline = search + body.get(search..)?.iter().position(|&b| b == b'\n')?;
        if let Some(found) = delimiter_at(body, newline + 1, delimiter) {
            return Some((newline, found));
        }
        search = newline + 1;
    }
}

/// Splits the body into the raw parts (headers and content) between its delimiters; the
/// preamble before the first and the epilogue after the last are ignored.
fn split_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, ParseError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let first = match delimiter_at(body, 0, delimiter) {
        Some(found) => Some(found),
        None => next_delimiter(body, 0, delimiter).map(|(_, found)| found),
    };
    let mut start = match first {
        Some(Delimiter::Part(start)) => start,
        Some(Delimiter::Close) => return Ok(Vec::new()),
        None => {
            return Err(ParseError::InvalidForm(Excerpt::of(
                "no line starts with the multipart boundary",
            )));
        }
    };
    let mut parts = Vec::new();
    loop {
        // The line break that ended the previous delimiter line can also start the next one:
        // an empty part with no headers at all.
        let Some((line_break, found)) = next_delimiter(body, start.saturating_sub(1), delimiter)
        else {
            return Err(ParseError::InvalidForm(Excerpt::of(
                "the body ends before the closing multipart boundary",
            )));
        };
        // The line break before a delimiter belongs to the delimiter, not to the content.
        let end = line_break.max(start);
        let part = body.get(start..end).unwrap_or_default();
        if parts.len() == MAX_FORM_FIELDS {
            return Err(too_many_fields());
        }
        parts.push(part.strip_suffix(b"\r").unwrap_or(part));
        match found {
            Delimiter::Part(next) => start = next,
            Delimiter::Close => return Ok(parts),
        }
    }
}

/// A part's `(name, value)`, or `None` for a file part or a part without a name.
fn text_field(part: &[u8]) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
    let (headers, content) = split_headers(part);
    let disposition = content_disposition(&String::from_utf8_lossy(headers))?;
    let params = parameters(&disposition);
    let param = |wanted: &str| {
        params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value)
    };
    // `attachment-N` parts carry a filename: the returned message, never needed here.
    if param("filename").is_some() || param("filename*").is_some() {
        return None;
    }
    let name = param("name")?.clone();
    Some((Cow::Owned(name), String::from_utf8_lossy(content)))
}

/// Splits a part at its first empty line; a part without one is all headers and no content.
fn split_headers(part: &[u8]) -> (&[u8], &[u8]) {
    let mut line_start = 0;
    while let Some(offset) = part
        .get(line_start..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
    {
        let line_end = line_start + offset;
        let line = part.get(line_start..line_end).unwrap_or_default();
        if line.is_empty() || line == b"\r" {
            let content = part.get(line_end + 1..).unwrap_or_default();
            return (part.get(..line_start).unwrap_or_default(), content);
        }
        line_start = line_end + 1;
    }
    (part, &[])
}

/// The value of the `Content-Disposition` header, with folded continuation lines unfolded.
fn content_disposition(headers: &str) -> Option<String> {
    let mut value: Option<String> = None;
    let mut continuing = false;
    for line in headers.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = value.as_mut().filter(|_| continuing) {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        continuing = false;
        if value.is_some() {
            continue;
        }
        if let Some((name, rest)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-disposition")
        {
            value = Some(rest.trim().to_owned());
            continuing = true;
        }
    }
    value
}

/// The parameters of a `form-data; name="x"; filename="y"` value: `(name, value)` pairs, with
/// quoted values unquoted (a backslash escapes the next character). The leading disposition
/// type is not a parameter and is dropped.
fn parameters(disposition: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = disposition.chars().peekable();
    // Skip the disposition type (`form-data`).
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ';').is_some() {}
        if chars.peek().is_none() {
            return params;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && *c != ';') {
            name.push(c);
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
                // Anything between the closing quote and the next `;` is junk.
                while chars.next_if(|c| *c != ';').is_some() {}
            } else {
                while let Some(c) = chars.next_if(|c| *c != ';') {
                    value.push(c);
                }
                value.truncate(value.trim_end().len());
            }
        }
        params.push((name.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;
    use crate::event::{EventKind, MessageId, Severity};
    use crate::signature::SigningKeys;
    use crate::status::{DeliveryStatus, Effect};

    const BOUNDARY: &str = "353d603f-eede-4b49-97ac-724fbc54ea3c";

    /// A part: a text field (`None` filename) or a file.
    struct Part<'a> {
        name: &'a str,
        filename: Option<&'a str>,
        content: &'a [u8],
    }

    fn field<'a>(name: &'a str, value: &'a str) -> Part<'a> {
        Part {
            name,
            filename: None,
            content: value.as_bytes(),
        }
    }

    /// Builds a body as a form-data encoder would, with `newline` as the line break.
    fn multipart(parts: &[Part<'_>], newline: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for part in parts {
            body.extend_from_slice(format!("--{BOUNDARY}{newline}").as_bytes());
            let disposition = match part.filename {
                Some(file) => format!("form-data; name=\"{}\"; filename=\"{file}\"", part.name),
                None => format!("form-data; name=\"{}\"", part.name),
            };
            body.extend_from_slice(
                format!("Content-Disposition: {disposition}{newline}").as_bytes(),
            );
            if part.filename.is_some() {
                body.extend_from_slice(
                    format!("Content-Type: application/octet-stream{newline}").as_bytes(),
                );
            }
            body.extend_from_slice(newline.as_bytes());
            body.extend_from_slice(part.content);
            body.extend_from_slice(newline.as_bytes());
        }
        body.extend_from_slice(format!("--{BOUNDARY}--{newline}").as_bytes());
        body
    }

    /// Binary content that looks like delimiters without being one, and is not UTF-8.
    const ATTACHMENT: &[u8] = b"\x00\xff\xfe\r\n--353d603f-eede-4b49-97ac-724fbc54ea3cX\r\n\
        --353d603f-eede-4b49-97ac-724fbc54ea3c-not\n\xc3\x28 trailing\r\n";

    fn dropped_with_attachment<'a>() -> Vec<Part<'a>> {
        let headers = r#"[["Subject", "Your pledge"], ["Message-Id", "<d@example.com>"], ["X-Mailgun-Variables", "{\"backer_id\": \"42\", \"project_id\": \"7\"}"]]"#;
        vec![
            field("Message-Id", "<d@example.com>"),
            field("attachment-count", "1"),
            field("body-plain", ""),
            field("code", "605"),
            field(
                "description",
                "Not delivering to previously bounced address",
            ),
            field("event", "dropped"),
            field("message-headers", headers),
            field("backer_id", "42"),
            field("reason", "hardfail"),
            field("recipient", "alice@example.com"),
            field("signature", "sig"),
            field("timestamp", "1510161862"),
            field("token", "tok"),
            Part {
                name: "attachment-1",
                filename: Some("message.mime"),
                content: ATTACHMENT,
            },
        ]
    }

    #[test]
    fn a_drop_with_a_binary_attachment_reads_like_the_form_in_crlf_and_lf() {
        for newline in ["\r\n", "\n"] {
            let body = multipart(&dropped_with_attachment(), newline);
            let signature = read_signature(&body, BOUNDARY).unwrap();
            assert_eq!(signature.timestamp, "1510161862");
            assert_eq!(signature.token, "tok");
            assert_eq!(signature.signature, "sig");
            let event = parse_event(&body, BOUNDARY, 0).unwrap();
            assert_eq!(event.kind, EventKind::Dropped);
            assert_eq!(event.severity, Some(Severity::Permanent));
            assert_eq!(event.message_id.as_ref().unwrap().as_str(), "d@example.com");
            assert_eq!(event.recipient.as_deref(), Some("alice@example.com"));
            assert_eq!(event.reason.as_deref(), Some("hardfail"));
            assert_eq!(event.delivery_code.as_deref(), Some("605"));
            assert_eq!(event.subject.as_deref(), Some("Your pledge"));
            assert_eq!(event.occurred_at_micros, 1_510_161_862_000_000);
            assert_eq!(event.variables.integer("backer_id"), Ok(Some(42)));
            assert_eq!(event.variables.integer("project_id"), Ok(Some(7)));
            assert_eq!(event.variables.as_map().len(), 2, "{:?}", event.variables);
            assert_eq!(event.effect, Effect::Status(DeliveryStatus::Dropped));
        }
    }

    #[test]
    fn dropping_the_attachments_keeps_every_field_and_the_signature() {
        for newline in ["\r\n", "\n"] {
            let body = multipart(&dropped_with_attachment(), newline);
            let stripped = without_file_parts(&body, BOUNDARY).unwrap();
            assert!(stripped.len() < body.len());
            assert!(
                !stripped
                    .windows(ATTACHMENT.len())
                    .any(|window| window == ATTACHMENT)
            );
            assert_eq!(
                read_signature(&stripped, BOUNDARY).unwrap(),
                read_signature(&body, BOUNDARY).unwrap()
            );
            assert_eq!(
                parse_event(&stripped, BOUNDARY, 0).unwrap(),
                parse_event(&body, BOUNDARY, 0).unwrap()
            );
        }
    }

    #[test]
    fn file_parts_are_skipped_and_text_parts_borrow_the_body() {
        let body = multipart(&dropped_with_attachment(), "\r\n");
        let parts = split_parts(&body, BOUNDARY).unwrap();
        assert_eq!(parts.len(), 14);
        // The attachment's own bytes survive the split intact (its CRLFs and fake delimiters).
        assert!(parts[13].ends_with(ATTACHMENT));
        let fields: Vec<_> = parts.into_iter().filter_map(text_field).collect();
        assert_eq!(fields.len(), 13);
        assert!(fields.iter().all(|(name, _)| name != "attachment-1"));
        assert!(
            fields
                .iter()
                .all(|(_, value)| matches!(value, Cow::Borrowed(_)))
        );
        let (_, empty) = &fields[2];
        assert_eq!(empty, "");
    }

    #[test]
    fn a_bounce_with_code_5_1_1_and_repeated_keys_follows_the_form_rules() {
        let body = multipart(
            &[
                field("event", "bounced"),
                field("event", "metadata-event"),
                field("timestamp", "metadata-timestamp"),
                field("code", "5.1.1"),
                field("tag", "a"),
                field("tag", "b"),
                field("project_id", "7"),
                field("project_id", "8"),
                field("backer_id", "\"9\""),
                field("timestamp", "1"),
                field("token", "t"),
                field("signature", "s"),
            ],
            "\r\n",
        );
        let event = parse_event(&body, BOUNDARY, 0).unwrap();
        assert_eq!(event.kind, EventKind::Bounced);
        assert_eq!(event.delivery_code.as_deref(), Some("5.1.1"));
        assert_eq!(event.tags, ["a", "b"]);
        assert_eq!(event.occurred_at_micros, 1_000_000);
        assert_eq!(event.variables.integer("project_id"), Ok(Some(7)));
        assert_eq!(event.variables.integer("backer_id"), Ok(Some(9)));
        assert_eq!(event.effect, Effect::Status(DeliveryStatus::Bounced));
    }

    #[test]
    fn preamble_padding_epilogue_and_quoted_names_are_tolerated() {
        let body = format!(
            "This is the preamble.\r\n--{BOUNDARY} \t\r\n\
             content-disposition: form-data;\r\n  name=\"event\"\r\n\r\nopened\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"weird \\\"name\\\"; x\"\r\n\r\nv\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=bare ; other=1\r\n\r\nb\r\n\
             --{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nno name\r\n\
             --{BOUNDARY}\r\n--{BOUNDARY}\r\n\
             Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''x.bin\r\n\r\nbin\r\n\
             --{BOUNDARY}--\r\nepilogue --{BOUNDARY}\r\n"
        );
        let event = parse_event(body.as_bytes(), BOUNDARY, 5).unwrap();
        assert_eq!(event.kind, EventKind::Opened);
        assert_eq!(event.occurred_at_micros, 5);
        assert_eq!(
            event.variables.text("weird \"name\"; x").as_deref(),
            Some("v")
        );
        assert_eq!(event.variables.text("bare").as_deref(), Some("b"));
        assert_eq!(event.variables.as_map().len(), 2, "{:?}", event.variables);
    }

    #[test]
    fn bodies_without_their_delimiters_are_invalid_forms() {
        let body = multipart(&dropped_with_attachment(), "\r\n");
        assert!(matches!(
            read_signature(&body, "another-boundary"),
            Err(ParseError::InvalidForm(_))
        ));
        let truncated = &body[..body.len() - 10];
        assert!(matches!(
            parse_event(truncated, BOUNDARY, 0),
            Err(ParseError::InvalidForm(_))
        ));
        let no_close =
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb");
        assert!(matches!(
            read_signature(no_close.as_bytes(), BOUNDARY),
            Err(ParseError::InvalidForm(_))
        ));
        assert!(matches!(
            read_signature(b"", BOUNDARY),
            Err(ParseError::InvalidForm(_))
        ));
        let empty = format!("--{BOUNDARY}--");
        assert_eq!(
            read_signature(empty.as_bytes(), BOUNDARY),
            Err(ParseError::MissingSignature)
        );
        assert_eq!(
            parse_event(empty.as_bytes(), BOUNDARY, 0),
            Err(ParseError::MissingEvent)
        );
    }

    #[test]
    fn values_that_are_not_utf8_are_replaced_not_fatal() {
        let body = multipart(
            &[
                Part {
                    name: "event",
                    filename: None,
                    content: b"opened",
                },
                Part {
                    name: "backer_id",
                    filename: None,
                    content: b"\xff42",
                },
            ],
            "\n",
        );
        let event = parse_event(&body, BOUNDARY, 0).unwrap();
        assert_eq!(
            event.variables.text("backer_id").as_deref(),
            Some("\u{fffd}42")
        );
        assert!(event.variables.integer("backer_id").is_err());
    }

    #[test]
    fn every_legacy_multipart_in_the_corpus_reads_as_its_manifest_says() {
        let Some(dir) = super::super::corpus_dir() else {
            return;
        };
        let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
        let mut checked = 0;
        for line in manifest.lines().skip(1) {
            let columns: Vec<&str> = line.split('\t').collect();
            let [
                file,
                "multipart",
                event_name,
                has_variables,
                message_id,
                key,
                _,
                notes,
                ..,
            ] = columns[..]
            else {
                continue;
            };
            // The boundary lives in the notes: `boundary=...;`.
            let boundary = notes
                .split_once("boundary=")
                .and_then(|(_, rest)| rest.split([';', ' ']).next())
                .unwrap_or_else(|| panic!("{file}: no boundary in the notes"));
            let body = std::fs::read(dir.join(file)).unwrap();
            let signature =
                read_signature(&body, boundary).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !key.is_empty() && !key.contains("MUST FAIL") {
                let keys = SigningKeys::from_comma_separated(key).unwrap();
                assert!(
                    keys.verify(&signature.signed()).is_ok(),
                    "{file}: signature"
                );
            }
            let event = parse_event(&body, boundary, 0).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(event.kind.as_str(), event_name, "{file}");
            if let Some(expected) = MessageId::parse(message_id) {
                assert_eq!(event.message_id, Some(expected), "{file}");
            }
            assert_eq!(
                !event.variables.is_empty(),
                has_variables == "yes",
                "{file}"
            );
            assert_eq!(
                event.variables.text("my_var_1").as_deref(),
                Some("Mailgun Variable #1")
            );
            assert_eq!(event.subject.as_deref(), Some("Test drop webhook"));
            assert_eq!(event.effect, Effect::Status(DeliveryStatus::Dropped));
            checked += 1;
        }
        assert!(
            checked >= 1,
            "no legacy multipart body found in the manifest"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_signature(&body, BOUNDARY);
            let _ = parse_event(&body, BOUNDARY, 0);
            let _ = read_signature(&body, "a");
            let _ = parse_event(&body, "a", 0);
        }

        #[test]
        fn any_cut_or_splice_of_a_real_body_never_panics(
            cut in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            noise in prop::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'"'), any::<u8>()],
                0..16,
            ),
            lf in any::<bool>(),
        ) {
            let mut body = multipart(&dropped_with_attachment(), if lf { "\n" } else { "\r\n" });
            body.truncate(cut.index(body.len() + 1));
            let at = at.index(body.len() + 1);
            body.splice(at..at, noise);
            let _ = read_signature(&body, BOUNDARY);
            let _ = parse_event(&body, BOUNDARY, 0);
        }
    }
}
