-- email_events, partitioned by month of occurred_at (UTC).
--
-- Why: at a hundred times the origin's volume the append-only events table grows by about a
-- billion rows a year. One table that size makes retention a DELETE of hundreds of millions of
-- rows (bloat, hours of vacuum) and every index probe deeper. Monthly partitions turn retention
-- into dropping whole tables, keep each month's indexes small, and let a query bounded in time
-- read only the months it names (partition pruning). Docs: docs/scaling.md.
--
-- Deduplication stays exact: Postgres requires the partition key in every unique constraint, so
-- the primary key becomes (event_key, occurred_at); the key already hashes the event's time to
-- the microsecond (mailtrail-core event_key), so two rows with one key always have one time, and
-- a unique (event_key, occurred_at) is as strict as a unique event_key. The upsert's ON CONFLICT
-- names both columns.
--
-- A default partition takes any row whose month has no partition yet, so a batch never fails for
-- want of one; `mailtrail partitions ensure` (and the worker, at start and hourly) creates the
-- months ahead and moves rows out of the default partition into their month
-- (mailtrail_create_event_partition below).
--
-- Postgres cannot turn a table into a partitioned one in place: the rows are copied into a new
-- table and the old one dropped, in this migration's transaction. That rewrites the whole table
-- under an exclusive lock (docs/scaling.md gives the time measured per million rows).

ALTER TABLE email_events RENAME TO email_events_unpartitioned;
ALTER TABLE email_events_unpartitioned RENAME CONSTRAINT email_events_pkey TO email_events_unpartitioned_pkey;
ALTER INDEX email_events_message_idx RENAME TO email_events_unpartitioned_message_idx;
ALTER INDEX email_events_recipient_idx RENAME TO email_events_unpartitioned_recipient_idx;

CREATE TABLE email_events (
    event_key         text        NOT NULL,
    message_id        text        NOT NULL,
    recipient         text        NOT NULL,
    kind              text        NOT NULL,
    occurred_at       timestamptz NOT NULL,
    event_id          text,
    backer_id         bigint      NOT NULL,
    project_id        bigint      NOT NULL,
    subject           text,
    status            text        COLLATE "C",
    status_tier       smallint,
    status_explicit   boolean,
    severity          text,
    reason            text        COLLATE "C",
    delivery_code     text        COLLATE "C",
    engagement        text,
    bot               boolean     NOT NULL DEFAULT false,
    url               text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    bot_kind          text,
    recipient_as_sent text
) PARTITION BY RANGE (occurred_at);
-- The primary key and the indexes are added after the rows are copied: building an index once
-- over a filled table is several times faster than maintaining three indexes row by row.

CREATE TABLE email_events_default PARTITION OF email_events DEFAULT;

-- Creates the partition of the month holding `month` (named email_events_YYYY_MM, bounds at
-- midnight UTC) unless it exists, moving that month's rows out of the default partition first:
-- Postgres refuses a partition whose range has rows in the default partition. The partition is
-- built as a plain table and then attached, because ATTACH PARTITION takes only a SHARE UPDATE
-- EXCLUSIVE lock on email_events (workers keep inserting), where CREATE TABLE ... PARTITION OF
-- would take an ACCESS EXCLUSIVE one. The default partition is locked first, so a worker whose
-- insert lands there waits for this instead of deadlocking with it.
CREATE FUNCTION mailtrail_create_event_partition(
    month date, OUT partition_name text, OUT created boolean, OUT moved_from_default bigint)
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    lower_bound timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    upper_bound timestamptz := (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
BEGIN
    partition_name := format('email_events_%s', to_char(first_day, 'YYYY_MM'));
    created := false;
    moved_from_default := 0;
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN;
    END IF;
    LOCK TABLE email_events_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE email_events INCLUDING DEFAULTS)', partition_name);
    -- The bound as a constraint lets ATTACH skip scanning the new table; dropped once attached.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L)',
                   partition_name, partition_name || '_bound', lower_bound, upper_bound);
    EXECUTE format('WITH moved AS (DELETE FROM email_events_default
                                   WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', partition_name)
        USING lower_bound, upper_bound;
    GET DIAGNOSTICS moved_from_default = ROW_COUNT;
    EXECUTE format('ALTER TABLE email_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   partition_name, lower_bound, upper_bound);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', partition_name, partition_name || '_bound');
    created := true;
END $$;

-- A partition for every month that has events, and for this month and the next three.
SELECT mailtrail_create_event_partition(month::date)
FROM (
    SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') AS month
    FROM email_events_unpartitioned
    UNION
    SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => ahead)
    FROM generate_series(0, 3) AS ahead
) months
ORDER BY month;

INSERT INTO email_events (event_key, message_id, recipient, kind, occurred_at, event_id,
        backer_id, project_id, subject, status, status_tier, status_explicit, severity, reason,
        delivery_code, engagement, bot, url, received_at, bot_kind, recipient_as_sent)
SELECT event_key, message_id, recipient, kind, occurred_at, event_id,
       backer_id, project_id, subject, status, status_tier, status_explicit, severity, reason,
       delivery_code, engagement, bot, url, received_at, bot_kind, recipient_as_sent
FROM email_events_unpartitioned;

ALTER TABLE email_events ADD CONSTRAINT email_events_pkey PRIMARY KEY (event_key, occurred_at);
CREATE INDEX email_events_message_idx ON email_events (message_id, recipient, occurred_at);
CREATE INDEX email_events_recipient_idx ON email_events (recipient, occurred_at);

-- Any other index a migration before this one put on email_events (the conversions' attribution
-- index, for one) moves to the new table with its name and definition.
DO $$
DECLARE
    old_index record;
BEGIN
    FOR old_index IN
        SELECT schemaname, indexname, indexdef FROM pg_indexes
        WHERE tablename = 'email_events_unpartitioned' AND schemaname = current_schema()
          AND indexname NOT IN ('email_events_unpartitioned_pkey',
                                'email_events_unpartitioned_message_idx',
                                'email_events_unpartitioned_recipient_idx')
    LOOP
        EXECUTE format('DROP INDEX %I.%I', old_index.schemaname, old_index.indexname);
        EXECUTE replace(old_index.indexdef,
                        format(' ON %I.email_events_unpartitioned ', old_index.schemaname),
                        format(' ON %I.email_events ', old_index.schemaname));
    END LOOP;
END $$;

DROP TABLE email_events_unpartitioned;

-- `mailtrail erase --recipient` finds a person's rows by address; without an index that is a
-- scan of the largest table. On lower(recipient), so the rows an old version kept in another
-- spelling (migration recipient_case) are found too. An address never changes, so the index
-- costs each new row one entry and the worker's updates nothing.
CREATE INDEX sent_emails_recipient_idx ON sent_emails (lower(recipient));
