//! Read-mostly operations for operators (the `mailtrail` CLI): a consistent look at the backlog,
//! paging through dead letters from the oldest end, and purging old dead letters.
//!
//! Dead letters are LPUSHed, so the list's tail holds the oldest. Operations over the whole list
//! walk it from the tail with *negative* indices: new dead letters arriving at the head while an
//! operator works do not shift the window, and entries an operation decides to keep stay at the
//! tail, so the next window simply starts past them (`skip`).

use std::sync::LazyLock;

use redis::Script;

use crate::queue::DeadLetter;
use crate::{Queue, QueueError};

/// Removes, within one window at the dead list's tail, the entries dead-lettered before a cutoff.
///
/// KEYS: dead list. ARGV: cutoff in milliseconds since the epoch, entries to skip at the tail,
/// window size. Returns `{examined, removed}`.
///
/// Matching entries are overwritten with a marker and the markers removed with one `LREM` from
/// the tail, all inside the script: no other client can see the marker, and the check and the
/// removal of each entry are one atomic step. A marker can never equal a real entry, which is
/// always a JSON object (starts with `{`). Entries that are not JSON, or carry no time, have no
/// age and are kept. Scanning from the tail with a negative count keeps each call proportional to
/// the window, not to the list.
static PURGE_OLDER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cutoff = tonumber(ARGV[1])
local skip = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local items = redis.call('LRANGE', KEYS[1], -(skip + count), -(skip + 1))
local marker = 'mailtrail:purged-dead-letter'
local removed = 0
for i, item in ipairs(items) do
  local ok, entry = pcall(cjson.decode, item)
  if ok and type(entry) == 'table' then
    local at = tonumber(entry['dead_at_ms'])
    if at and at < cutoff then
      redis.call('LSET', KEYS[1], -(skip + #items - i + 1), marker)
      removed = removed + 1
    end
  end
end
if removed > 0 then redis.call('LREM', KEYS[1], -removed, marker) end
return {#items, removed}
",
    )
});

/// A raw dead entry with its parsed form (or why it does not parse).
type RawDeadLetter = (String, Result<DeadLetter, QueueError>);

impl Queue {
    /// The backlog's length and its oldest envelope (the right end, taken next), read together.
    pub async fn backlog_snapshot(&self) -> Result<(u64, Option<String>), QueueError> {
        let mut connection = self.connection();
        let events = self.keys().events();
        let (length, oldest): (u64, Option<String>) = redis::pipe()
            .atomic()
            .llen(&events)
            .lindex(&events, -1)
            .query_async(&mut connection)
            .await?;
        Ok((length, oldest))
    }

    /// Up to `count` dead letters ending `skip` entries before the oldest, in list order (newest
    /// first, like [`Queue::dead_letters`]); empty once the window passes the head.
    pub async fn dead_letters_from_tail(
        &self,
        skip: u64,
        count: u64,
    ) -> Result<Vec<RawDeadLetter>, QueueError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection();
        let start = -tail_offset(skip.saturating_add(count));
        let stop = -tail_offset(skip.saturating_add(1));
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys().dead())
            .arg(start)
            .arg(stop)
            .query_async(&mut connection)
            .await?;
        Ok(raw.into_iter().map(parse_dead_letter).collect())
    }

    /// Removes dead letters older than `cutoff_ms` from one window of `count` entries that ends
    /// `skip` entries before the oldest. Returns (entries examined, entries removed); callers loop,
    /// skipping the entries kept so far, until they have examined what they meant to.
    pub async fn purge_dead_window(
        &self,
        cutoff_ms: i64,
        skip: u64,
        count: u64,
    ) -> Result<(u64, u64), QueueError> {
        if count == 0 {
            return Ok((0, 0));
        }
        let mut connection = self.connection();
        let (examined, removed): (u64, u64) = PURGE_OLDER
            .key(self.keys().dead())
            .arg(cutoff_ms)
            .arg(skip)
            .arg(count)
            .invoke_async(&mut connection)
            .await?;
        Ok((examined, removed))
    }
}

/// Pairs a raw dead entry with its parsed form.
fn parse_dead_letter(entry: String) -> RawDeadLetter {
    let parsed = serde_json::from_str(&entry).map_err(QueueError::from);
    (entry, parsed)
}

/// A distance from the tail as a Redis index magnitude (lists never reach `i64::MAX`).
fn tail_offset(distance: u64) -> i64 {
    i64::try_from(distance).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_offsets_saturate_instead_of_wrapping() {
        assert_eq!(tail_offset(3), 3);
        assert_eq!(tail_offset(u64::MAX), i64::MAX);
    }
}
