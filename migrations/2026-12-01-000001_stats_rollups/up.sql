-- Stats that stay fast at any size: counters kept in the same transaction as the rows they
-- summarise, so the project and system questions sum a few rollup rows instead of scanning
-- sent_emails. See docs/stats.md for the design and why it is exact.

-- 1. What a bucket needs from each message: the day of its first event (UTC), and machine
--    clicks apart from people's (clicked_count and first/last_clicked_at are people's from now
--    on, like the opens). Existing rows are recomputed from the append-only events.
ALTER TABLE sent_emails
    ADD COLUMN first_event_at  timestamptz,
    ADD COLUMN bot_click_count bigint NOT NULL DEFAULT 0;
ALTER TABLE email_events ADD COLUMN bot_kind text;

UPDATE sent_emails s SET
    first_event_at = e.first_event_at,
    clicked_count = e.human_clicks,
    bot_click_count = e.bot_clicks,
    first_clicked_at = e.first_clicked_at,
    last_clicked_at = e.last_clicked_at
FROM (
    SELECT message_id, recipient,
           min(occurred_at) AS first_event_at,
           count(*) FILTER (WHERE engagement = 'clicked' AND NOT bot) AS human_clicks,
           count(*) FILTER (WHERE engagement = 'clicked' AND bot) AS bot_clicks,
           min(occurred_at) FILTER (WHERE engagement = 'clicked' AND NOT bot) AS first_clicked_at,
           max(occurred_at) FILTER (WHERE engagement = 'clicked' AND NOT bot) AS last_clicked_at
    FROM email_events
    WHERE status IS NOT NULL
    GROUP BY message_id, recipient
) e
WHERE s.message_id = e.message_id AND s.recipient = e.recipient;
-- A row always has events; this only guards against a hand-edited table.
UPDATE sent_emails SET first_event_at = least(status_at, last_event_at) WHERE first_event_at IS NULL;
ALTER TABLE sent_emails ALTER COLUMN first_event_at SET NOT NULL;

-- Backer questions read sent_emails through this index (a backer has few messages), with a
-- date range on the day of the first event.
DROP INDEX sent_emails_backer_id_idx;
CREATE INDEX sent_emails_backer_id_idx ON sent_emails (backer_id, first_event_at);

-- 2. The counters. One row per (project, day of first event, subject, status); the system's
--    per (day, status), so the whole-system question never sums per-project rows.
CREATE TABLE project_rollups (
    project_id       bigint NOT NULL,
    day              date   NOT NULL,
    subject          text,
    status           text   COLLATE "C" NOT NULL,
    messages         bigint NOT NULL DEFAULT 0,
    opened_messages  bigint NOT NULL DEFAULT 0,  -- messages opened by a person at least once
    clicked_messages bigint NOT NULL DEFAULT 0,  -- messages clicked by a person at least once
    human_opens      bigint NOT NULL DEFAULT 0,
    bot_opens        bigint NOT NULL DEFAULT 0,
    human_clicks     bigint NOT NULL DEFAULT 0,
    bot_clicks       bigint NOT NULL DEFAULT 0,
    CONSTRAINT project_rollups_key UNIQUE NULLS NOT DISTINCT (project_id, day, subject, status)
);

CREATE TABLE system_rollups (
    day              date   NOT NULL,
    status           text   COLLATE "C" NOT NULL,
    messages         bigint NOT NULL DEFAULT 0,
    opened_messages  bigint NOT NULL DEFAULT 0,
    clicked_messages bigint NOT NULL DEFAULT 0,
    human_opens      bigint NOT NULL DEFAULT 0,
    bot_opens        bigint NOT NULL DEFAULT 0,
    human_clicks     bigint NOT NULL DEFAULT 0,
    bot_clicks       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, status)
);

-- What one message contributes to its bucket, times `sign` (+1 as it is now, -1 as it was).
CREATE TYPE mailtrail_rollup_delta AS (
    project_id bigint, day date, subject text, status text,
    messages bigint, opened_messages bigint, clicked_messages bigint,
    human_opens bigint, bot_opens bigint, human_clicks bigint, bot_clicks bigint
);

CREATE FUNCTION mailtrail_rollup_delta_of(s sent_emails, sign int)
RETURNS mailtrail_rollup_delta LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(s.project_id, (s.first_event_at AT TIME ZONE 'UTC')::date, s.subject, s.status,
               sign, sign * (s.opened_count > 0)::int, sign * (s.clicked_count > 0)::int,
               sign * s.opened_count, sign * s.bot_open_count,
               sign * s.clicked_count, sign * s.bot_click_count)::mailtrail_rollup_delta
$$;

-- Adds a statement's deltas to both rollups, project rows first, then system rows, each in
-- key order: every writer takes the bucket locks in the same order, so two workers adding to the
-- same hot buckets (today's campaign) never deadlock, and ON CONFLICT ... DO UPDATE adds to the
-- committed value, so no update is lost. Buckets whose deltas cancel out are not touched.
CREATE FUNCTION mailtrail_apply_rollup_deltas(deltas mailtrail_rollup_delta[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO project_rollups AS r
    SELECT project_id, day, subject, status,
           sum(messages), sum(opened_messages), sum(clicked_messages),
           sum(human_opens), sum(bot_opens), sum(human_clicks), sum(bot_clicks)
    FROM unnest(deltas)
    GROUP BY project_id, day, subject, status
    HAVING sum(messages) <> 0 OR sum(opened_messages) <> 0 OR sum(clicked_messages) <> 0
        OR sum(human_opens) <> 0 OR sum(bot_opens) <> 0
        OR sum(human_clicks) <> 0 OR sum(bot_clicks) <> 0
    ORDER BY project_id, day, subject, status
    ON CONFLICT (project_id, day, subject, status) DO UPDATE SET
        messages = r.messages + EXCLUDED.messages,
        opened_messages = r.opened_messages + EXCLUDED.opened_messages,
        clicked_messages = r.clicked_messages + EXCLUDED.clicked_messages,
        human_opens = r.human_opens + EXCLUDED.human_opens,
        bot_opens = r.bot_opens + EXCLUDED.bot_opens,
        human_clicks = r.human_clicks + EXCLUDED.human_clicks,
        bot_clicks = r.bot_clicks + EXCLUDED.bot_clicks;

    INSERT INTO system_rollups AS r
    SELECT day, status,
           sum(messages), sum(opened_messages), sum(clicked_messages),
           sum(human_opens), sum(bot_opens), sum(human_clicks), sum(bot_clicks)
    FROM unnest(deltas)
    GROUP BY day, status
    HAVING sum(messages) <> 0 OR sum(opened_messages) <> 0 OR sum(clicked_messages) <> 0
        OR sum(human_opens) <> 0 OR sum(bot_opens) <> 0
        OR sum(human_clicks) <> 0 OR sum(bot_clicks) <> 0
    ORDER BY day, status
    ON CONFLICT (day, status) DO UPDATE SET
        messages = r.messages + EXCLUDED.messages,
        opened_messages = r.opened_messages + EXCLUDED.opened_messages,
        clicked_messages = r.clicked_messages + EXCLUDED.clicked_messages,
        human_opens = r.human_opens + EXCLUDED.human_opens,
        bot_opens = r.bot_opens + EXCLUDED.bot_opens,
        human_clicks = r.human_clicks + EXCLUDED.human_clicks,
        bot_clicks = r.bot_clicks + EXCLUDED.bot_clicks;
END $$;

-- Statement-level triggers with transition tables: OLD TABLE holds each changed row exactly as
-- it was before this statement changed it (whatever other workers committed before), NEW TABLE
-- as it is after, so "old bucket loses one, new bucket gains one" is exact under concurrency
-- and costs one rollup write per statement, not one per row. Any writer is covered: the
-- worker's upsert, a repair, an erasure.
CREATE FUNCTION mailtrail_rollup_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailtrail_apply_rollup_deltas(
        ARRAY(SELECT mailtrail_rollup_delta_of(n, 1) FROM new_rows n));
    RETURN NULL;
END $$;

CREATE FUNCTION mailtrail_rollup_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailtrail_apply_rollup_deltas(ARRAY(
        SELECT mailtrail_rollup_delta_of(n, 1) FROM new_rows n
        UNION ALL
        SELECT mailtrail_rollup_delta_of(o, -1) FROM old_rows o));
    RETURN NULL;
END $$;

CREATE FUNCTION mailtrail_rollup_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailtrail_apply_rollup_deltas(
        ARRAY(SELECT mailtrail_rollup_delta_of(o, -1) FROM old_rows o));
    RETURN NULL;
END $$;

CREATE TRIGGER sent_emails_rollup_insert AFTER INSERT ON sent_emails
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailtrail_rollup_inserted();
CREATE TRIGGER sent_emails_rollup_update AFTER UPDATE ON sent_emails
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail_rollup_updated();
CREATE TRIGGER sent_emails_rollup_delete AFTER DELETE ON sent_emails
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mailtrail_rollup_deleted();

-- 3. Recomputing the counters from sent_emails: `mailtrail rollups rebuild`, and now, so the
--    existing data is covered. Writers wait for it (SHARE lock) so nothing changes meanwhile.
CREATE FUNCTION mailtrail_rebuild_rollups() RETURNS void LANGUAGE sql AS $$
    LOCK TABLE sent_emails IN SHARE MODE;
    DELETE FROM project_rollups;
    DELETE FROM system_rollups;
    INSERT INTO project_rollups
    SELECT d.project_id, d.day, d.subject, d.status,
           sum(d.messages), sum(d.opened_messages), sum(d.clicked_messages),
           sum(d.human_opens), sum(d.bot_opens), sum(d.human_clicks), sum(d.bot_clicks)
    FROM sent_emails s, LATERAL mailtrail_rollup_delta_of(s, 1) d
    GROUP BY d.project_id, d.day, d.subject, d.status;
    INSERT INTO system_rollups
    SELECT day, status,
           sum(messages), sum(opened_messages), sum(clicked_messages),
           sum(human_opens), sum(bot_opens), sum(human_clicks), sum(bot_clicks)
    FROM project_rollups
    GROUP BY day, status;
$$;

SELECT mailtrail_rebuild_rollups();
