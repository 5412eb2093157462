//! Erasing a person from the dead letters (the Redis half of `mailtrail erase`).
//!
//! A dead letter keeps its envelope exactly as received, so it may hold a recipient's address
//! anywhere in the body, in whatever encoding the body used: as is in JSON and multipart bodies,
//! percent-encoded (`%40` for `@`) in form bodies. Dead letters are, by definition, bodies that
//! could not be parsed, so they are searched as text rather than read as events:
//! [`DeadEntry::mentions_address`] finds the address in any letter case, in either encoding, as a
//! whole address (`bob@example.com` is not found in `jimbob@example.com` nor in
//! `bob@example.com.au`). [`Queue::remove_dead`] then removes exactly those entries.

use crate::Queue;
use crate::dead_letters::DeadEntry;
use crate::error::QueueError;

impl DeadEntry {
    /// True when the stored entry holds `address` (any letter case; as is or percent-encoded)
    /// as a whole address.
    pub fn mentions_address(&self, address: &str) -> bool {
        text_mentions_address(&self.raw, address)
    }
}

impl Queue {
    /// Removes the given entries from the dead lists of every shard (every copy of each); returns
    /// how many were removed. An entry no longer there (replayed or purged meanwhile) is skipped.
    pub async fn remove_dead(&self, entries: &[&DeadEntry]) -> Result<u64, QueueError> {
        if entries.is_empty() {
            return Ok(0);
        }
        // One transaction per shard: on a cluster the shards' dead lists live in different
        // slots, which one MULTI cannot span. An entry is in one shard's list; LREM elsewhere
        // removes nothing.
        let mut total = 0;
        for shard in self.shards() {
            let dead = shard.keys().dead();
            let mut pipeline = redis::pipe();
            pipeline.atomic();
            for entry in entries {
                pipeline.lrem(&dead, 0, &entry.raw);
            }
            let removed: Vec<u64> = pipeline.query_async(&mut shard.connection()).await?;
            total += removed.iter().sum::<u64>();
        }
        Ok(total)
    }
}

/// Characters that can continue an address on either side of a match, so a match next to one is
/// part of a longer address.
fn continues_address(character: u8) -> bool {
    character.is_ascii_alphanumeric() || b"._+-".contains(&character)
}

/// `address` (trimmed, any case) in `text` as a whole address, as is or percent-encoded.
pub(crate) fn text_mentions_address(text: &str, address: &str) -> bool {
    let address = address.trim().to_ascii_lowercase();
    if address.is_empty() {
        return false;
    }
    let text = text.to_ascii_lowercase();
    let encoded = address
        .replace('%', "%25")
        .replace('@', "%40")
        .replace('+', "%2b");
    [address, encoded]
        .iter()
        .any(|needle| has_whole_match(text.as_bytes(), needle.as_bytes()))
}

fn has_whole_match(text: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || needle.len() > text.len() {
        return false;
    }
    (0..=text.len() - needle.len()).any(|start| {
        let end = start + needle.len();
        text[start..end] == *needle && starts_whole(text, start) && ends_whole(text, end)
    })
}

/// The match at `start` does not continue an address to its left; a percent-escape (`%3c` for
/// `<`, `%20`) or a JSON escape (`\n`, `\"`) just before it is a delimiter, not part of it.
fn starts_whole(text: &[u8], start: usize) -> bool {
    let Some(&before) = start.checked_sub(1).and_then(|i| text.get(i)) else {
        return true;
    };
    if !continues_address(before) {
        return true;
    }
    let percent_escape = start >= 3
        && text[start - 3] == b'%'
        && text[start - 2].is_ascii_hexdigit()
        && text[start - 1].is_ascii_hexdigit();
    let json_escape = start >= 2 && text[start - 2] == b'\\';
    percent_escape || json_escape
}

/// The match ending at `end` does not continue to its right (a final `.` ends a sentence, not
/// the domain, unless more of a domain follows it).
fn ends_whole(text: &[u8], end: usize) -> bool {
    match text.get(end) {
        None => true,
        Some(b'.') => !text.get(end + 1).is_some_and(|c| c.is_ascii_alphanumeric()),
        Some(&after) => !continues_address(after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_found_in_any_case_and_encoding_but_only_whole() {
        let json = r#"{"event-data":{"recipient":"Bob@Example.com","message":{}}}"#;
        assert!(text_mentions_address(json, "bob@example.com"));
        assert!(text_mentions_address(json, "  BOB@example.COM "));
        let form = "event=bounced&recipient=bob%2Btag%40example.com&code=550";
        assert!(text_mentions_address(form, "bob+tag@example.com"));
        let header = "message-headers=%5B%5B%22To%22%2C%22%3Cbob%40example.com%3E%22%5D%5D";
        assert!(text_mentions_address(header, "bob@example.com"));
        let escaped = r#"{\"recipient\":\"bob@example.com\"}"#;
        assert!(text_mentions_address(escaped, "bob@example.com"));
        assert!(text_mentions_address(
            "write to bob@example.com.",
            "bob@example.com"
        ));

        assert!(!text_mentions_address(
            "jimbob@example.com",
            "bob@example.com"
        ));
        assert!(!text_mentions_address(
            "bob@example.com.au",
            "bob@example.com"
        ));
        assert!(!text_mentions_address(
            "bob@example.community",
            "bob@example.com"
        ));
        assert!(!text_mentions_address("anything", "  "));
    }
}
