//! The Lua scripts that make each queue step atomic (hashed once, sent by EVALSHA). Redis runs a script without interleaving any
//! other command, so each one below is all-or-nothing even if the caller dies mid-call.

use std::sync::LazyLock;

use redis::Script;

/// Records the token and pushes the envelope in one step.
///
/// KEYS: token marker, backlog. ARGV: token TTL in seconds, envelope, backlog cap (0 = none).
/// Returns 1 queued, 0 token already used, -1 backlog full.
///
/// Marking the token in the same step as the push is what makes "200 for a seen token" safe: a
/// token can only be marked if its event is queued, so a retry Mailgun sends after a failure is
/// never mistaken for a duplicate. The cap is checked first, so a full backlog answers -1 even
/// for a seen token (Mailgun retries, and learns it was a duplicate once there is room); that
/// order lets one `SET NX` both test and mark the token, the cheapest script Redis runs per
/// webhook.
pub(crate) static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('LLEN', KEYS[2]) >= cap then return -1 end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
",
    )
});

/// Moves up to ARGV[1] envelopes from the backlog's right end to the left of a processing list.
///
/// KEYS: backlog, processing list. Returns the moved envelopes, oldest first. LMOVE moves, it
/// never copies, so an envelope is always in exactly one list.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local items = {}
for i = 1, tonumber(ARGV[1]) do
  local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not item then break end
  items[#items + 1] = item
end
return items
",
    )
});

/// The guard both settle scripts start with: a batch is settled at most once, and only by the
/// process that holds its worker's lease.
///
/// KEYS[4] is the batch's `settled:{batch}` marker, KEYS[5] the worker's lease; ARGV[1] the
/// settling process's instance id ('' skips the lease check). Returns -2 when the marker exists
/// (an earlier send of this settle took effect: a reply lost to a timeout, then a retry), -3 when
/// the lease is not this instance's (it lapsed, and a reaper may have moved the list meanwhile).
/// The marker is checked first, so a retry of a settle that took effect says so even if the
/// lease lapsed since.
const SETTLE_GUARD: &str = r"
if redis.call('EXISTS', KEYS[4]) == 1 then return -2 end
if ARGV[1] ~= '' then
  local lease = redis.call('GET', KEYS[5])
  local suffix = ':' .. ARGV[1]
  if not lease or string.sub(lease, -string.len(suffix)) ~= suffix then return -3 end
end
";

/// Settles a processed batch: dead letters are pushed, then every processed envelope is removed
/// from the processing list, then skip counters move, and the batch's marker is set, all at once.
///
/// KEYS: processing list, dead list, skipped hash, the batch's settled marker, the lease.
/// ARGV: instance (see [`SETTLE_GUARD`]), marker TTL in seconds, n envelopes, m dead entries,
/// then the n envelopes (oldest first: each LREM searches from the tail, where the oldest
/// claimed envelopes are, so it finds its envelope at once even when a newer batch is already
/// claimed at the head), the m dead entries, and (reason, count) pairs.
/// Returns n, or -2 / -3 from the guard (then nothing changed).
pub(crate) static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{SETTLE_GUARD}
local n = tonumber(ARGV[3])
local m = tonumber(ARGV[4])
for i = 5 + n, 4 + n + m do redis.call('LPUSH', KEYS[2], ARGV[i]) end
for i = 5, 4 + n do redis.call('LREM', KEYS[1], -1, ARGV[i]) end
for i = 5 + n + m, #ARGV, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[4], '1', 'EX', ARGV[2])
return n
"
    ))
});

/// Settles a whole claimed batch by position: when the batch is still the oldest part of the
/// processing list (at its tail), removes it with one `LTRIM` instead of one `LREM` per envelope.
///
/// KEYS: processing list, dead list, skipped hash, the batch's settled marker, the lease.
/// ARGV: instance (see [`SETTLE_GUARD`]), marker TTL in seconds, batch size n, the batch's
/// oldest envelope, its newest, m dead entries count, the m dead entries, then (reason, count)
/// pairs.
///
/// Claims only ever add at the head, so the n envelopes at the tail are the batch exactly when
/// the tail is its oldest envelope and the n-th from the tail its newest; both are checked. If
/// not (the list was changed by someone else), nothing happens and -1 is returned: the caller
/// then settles by value with [`SETTLE`]. Sending two envelopes instead of all n, and an `LTRIM`
/// instead of n `LREM`s into the append-only file, is most of Redis' work per batch. Returns n,
/// -1, or -2 / -3 from the guard.
///
/// Without the marker, a settle whose reply was lost (a Redis timeout) and that was sent again
/// would find the batch gone from the tail, fall back to settling by value, and push its dead
/// letters and skip counts a second time.
pub(crate) static SETTLE_CLAIMED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{SETTLE_GUARD}
local n = tonumber(ARGV[3])
if n < 1 or redis.call('LINDEX', KEYS[1], -1) ~= ARGV[4]
  or redis.call('LINDEX', KEYS[1], -n) ~= ARGV[5] then return -1 end
local m = tonumber(ARGV[6])
for i = 7, 6 + m do redis.call('LPUSH', KEYS[2], ARGV[i]) end
redis.call('LTRIM', KEYS[1], 0, -n - 1)
for i = 7 + m, #ARGV, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[4], '1', 'EX', ARGV[2])
return n
"
    ))
});

/// Moves a processing list back onto the backlog's consumer end, so its envelopes are taken
/// next, in their original order; each is re-inserted before it is removed.
///
/// KEYS: processing list, backlog, lease, workers set, dead list, recovery counters hash, the
/// worker's reaped record.
/// ARGV: only-if-dead flag ('1': do nothing if the lease exists, the reaper's check repeated
/// inside the script so a worker that renewed meanwhile keeps its list; then deregister),
/// worker id, count-as-crash flag, poison cap, recovery window in milliseconds.
///
/// When the requeue follows a crash, each envelope's recovery counter (the hash field named by
/// its SHA-1, valued `{count}:{first_ms}`) is incremented; a counter whose window (from its first
/// recovery) is over starts again at 1, as the key with a TTL it replaces did. One recovered more
/// than `cap` times within the window is the likely cause of the crashes (a poison message), so
/// it is dead-lettered instead of being fed to the next worker. The counter lives in a field
/// named in `KEYS`, not in a key built here from the envelope, so the script runs on a cluster.
///
/// A reap (only-if-dead and counting) cannot know whether the owner died or was only cut off
/// from Redis (or frozen) for longer than its lease, so it writes what it counted into the
/// worker's reaped record (SHA-1 → increments, kept for the recovery window): an owner that comes
/// back to find its lease lapsed takes those counts back with [`ABSOLVE`]. Every counting
/// requeue replaces the record, and a start-up recovery (counting, not only-if-dead) removes it:
/// a new process with the worker's id means the previous one did die, so its counts stand.
/// Returns {moved, poisoned}, or {-1, 0} when the worker turned out to be alive.
pub(crate) static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return {-1, 0} end
local moved, poisoned = 0, 0
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local cap, window_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local reaping = ARGV[1] == '1' and ARGV[3] == '1'
if ARGV[3] == '1' then redis.call('DEL', KEYS[7]) end
while true do
  local item = redis.call('LINDEX', KEYS[1], 0)
  if not item then break end
  local dead = false
  if ARGV[3] == '1' then
    local field = redis.sha1hex(item)
    local count, first_ms = 0, now_ms
    local counted = redis.call('HGET', KEYS[6], field)
    if counted then
      local c, f = string.match(counted, '^(%d+):(%d+)$')
      if c and now_ms - tonumber(f) < window_ms then count, first_ms = tonumber(c), tonumber(f) end
    end
    count = count + 1
    if count > cap then
      redis.call('LPUSH', KEYS[5], cjson.encode({
        reason = 'poison: in flight on ' .. count .. ' workers that died, within the recovery window',
        dead_at_ms = now_ms, worker = ARGV[2], envelope = item}))
      redis.call('HDEL', KEYS[6], field)
      dead = true
      poisoned = poisoned + 1
    else
      redis.call('HSET', KEYS[6], field, string.format('%d:%d', count, first_ms))
      if reaping then redis.call('HINCRBY', KEYS[7], field, 1) end
    end
  end
  if not dead then
    redis.call('RPUSH', KEYS[2], item)
    moved = moved + 1
  end
  redis.call('LPOP', KEYS[1])
end
if reaping and redis.call('EXISTS', KEYS[7]) == 1 then redis.call('PEXPIRE', KEYS[7], window_ms) end
if ARGV[1] == '1' then redis.call('SREM', KEYS[4], ARGV[2]) end
return {moved, poisoned}
",
    )
});

/// Takes back the recovery counts a reap added, for a worker that turned out to be alive.
///
/// KEYS: the worker's reaped record, recovery counters hash. Each recorded field's counter goes
/// down by what the reap added (removed at zero); a counter that restarted since, or is gone, is
/// never taken below zero. The record is removed. Returns how many counters were lowered.
pub(crate) static ABSOLVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local record = redis.call('HGETALL', KEYS[1])
local lowered = 0
for i = 1, #record, 2 do
  local counted = redis.call('HGET', KEYS[2], record[i])
  if counted then
    local c, f = string.match(counted, '^(%d+):(%d+)$')
    if c then
      local left = tonumber(c) - tonumber(record[i + 1])
      if left > 0 then
        redis.call('HSET', KEYS[2], record[i], string.format('%d:%s', left, f))
      else
        redis.call('HDEL', KEYS[2], record[i])
      end
      lowered = lowered + 1
    end
  end
end
redis.call('DEL', KEYS[1])
return lowered
",
    )
});

/// Removes recovery counters whose window is over, from one `HSCAN` step of the counters hash.
///
/// KEYS: recovery counters hash. ARGV: scan cursor, scan count, recovery window in milliseconds.
/// Returns {next cursor, removed}; cursor "0" means a full pass has ended.
///
/// [`REQUEUE`] already ignores an expired counter, so this only bounds the hash's memory: without
/// it, every envelope ever recovered from a crash would keep its field. A field whose value is
/// not `{count}:{first_ms}` cannot be aged and is removed too. One call touches about `count`
/// fields, so a large hash is pruned over several calls without blocking Redis.
pub(crate) static PRUNE_RECOVERED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window_ms = tonumber(ARGV[3])
local scan = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local fields = scan[2]
local removed = 0
for i = 1, #fields, 2 do
  local first_ms = tonumber(string.match(fields[i + 1], '^%d+:(%d+)$'))
  if not first_ms or now_ms - first_ms >= window_ms then
    removed = removed + redis.call('HDEL', KEYS[1], fields[i])
  end
end
return {scan[1], removed}
",
    )
});

/// Takes a worker's lease if it is free (or already this instance's).
///
/// KEYS: lease, workers set. ARGV: instance id, now in ms, TTL in ms, worker id.
/// The lease's value is `{renewed_ms}:{instance}`. Returns 1 when held (taken or renewed), 0 when
/// another live instance holds it: two processes must never share a worker id, or each would
/// requeue the other's in-flight envelopes.
pub(crate) static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
local suffix = ':' .. ARGV[1]
if current and string.sub(current, -string.len(suffix)) ~= suffix then return 0 end
redis.call('SET', KEYS[1], ARGV[2] .. suffix, 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
",
    )
});

/// Renews a lease this instance holds, and only that: a lapsed lease is not taken again.
///
/// KEYS: lease, workers set. ARGV: instance id, now in ms, TTL in ms, worker id.
/// Returns 1 renewed, 0 lapsed (the key is gone: the lease ran out, and a reaper may have moved
/// the worker's list), -1 held by another instance. Unlike [`LEASE`], which a starting worker
/// uses, a running worker must learn of a lapse rather than paper over it: what it holds in
/// memory may have been handed to another worker meanwhile.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local suffix = ':' .. ARGV[1]
if string.sub(current, -string.len(suffix)) ~= suffix then return -1 end
redis.call('SET', KEYS[1], ARGV[2] .. suffix, 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
",
    )
});

/// Moves dead letters back onto the backlog.
///
/// KEYS: dead list, backlog. ARGV: the raw dead entries to replay, then their envelopes, in
/// pairs. An entry that is no longer in the dead list (replayed or purged by someone else in the
/// meantime) is skipped, so a replay never queues an envelope twice. Returns how many moved.
pub(crate) static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local moved = 0
for i = 1, #ARGV, 2 do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    moved = moved + 1
  end
end
return moved
",
    )
});

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
pub(crate) static PURGE_OLDER: LazyLock<Script> = LazyLock::new(|| {
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
