-- Conversions the application reports, each credited to the email that led to it (or to none),
-- and counters of them kept in the same transaction. docs/conversions.md has the design; the
-- short of it: the credit is a function of the conversion and the backer's human opens and
-- clicks of the project in `email_events`, recomputed for a (backer, project) whenever anything
-- of it arrives, so it does not depend on arrival order.

-- 1. The conversions. An id is the application's and unique within its project.
CREATE TABLE conversions (
    project_id          bigint      NOT NULL,
    conversion_id       text        NOT NULL,
    backer_id           bigint      NOT NULL,
    kind                text        NOT NULL,
    occurred_at         timestamptz NOT NULL,
    value_cents         bigint      CHECK (value_cents >= 0),
    received_at         timestamptz NOT NULL DEFAULT now(),
    -- The credit: by a person's click, else a person's open, within the window; else none.
    attributed_by       text        NOT NULL DEFAULT 'none'
                        CHECK (attributed_by IN ('click', 'open', 'none')),
    credited_message_id text,
    credited_recipient  text,
    -- The credited message's subject (its sent_emails row's), so conversions group with it.
    credited_subject    text,
    -- When the crediting click or open happened.
    credited_at         timestamptz,
    -- The window the credit was computed with (days).
    attribution_window_days integer NOT NULL DEFAULT 7,
    PRIMARY KEY (project_id, conversion_id)
);
CREATE INDEX conversions_backer_project_idx ON conversions (backer_id, project_id, occurred_at);

-- The attribution looks up a backer's human opens and clicks of a project by time; a backer has
-- at most a few hundred messages, so this partial index keeps the look-up to a few entries.
CREATE INDEX email_events_human_engagement_idx ON email_events (backer_id, project_id, occurred_at)
    WHERE engagement IN ('opened', 'clicked') AND NOT bot;

-- 2. The counters: per (project, day of the conversion (UTC), credited subject, attributed_by).
CREATE TABLE conversion_rollups (
    project_id    bigint NOT NULL,
    day           date   NOT NULL,
    subject       text,
    attributed_by text   NOT NULL,
    conversions   bigint NOT NULL DEFAULT 0,
    value_cents   bigint NOT NULL DEFAULT 0,
    CONSTRAINT conversion_rollups_key UNIQUE NULLS NOT DISTINCT (project_id, day, subject, attributed_by)
);

-- Statement-level triggers with transition tables, as for the message counters
-- (stats_rollups): the old bucket loses what the statement changed, the new one gains it, one
-- rollup write per statement, in key order so concurrent writers take bucket locks in the same
-- order.
CREATE FUNCTION mailtrail_conversion_rollup_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_rollups AS r
    SELECT project_id, (occurred_at AT TIME ZONE 'UTC')::date, credited_subject, attributed_by,
           sum(sign), sum(sign * coalesce(value_cents, 0))
    FROM (SELECT n.*, 1 AS sign FROM new_rows n) d
    GROUP BY 1, 2, 3, 4
    HAVING sum(sign) <> 0 OR sum(sign * coalesce(value_cents, 0)) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (project_id, day, subject, attributed_by) DO UPDATE SET
        conversions = r.conversions + EXCLUDED.conversions,
        value_cents = r.value_cents + EXCLUDED.value_cents;
    RETURN NULL;
END $$;
CREATE FUNCTION mailtrail_conversion_rollup_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_rollups AS r
    SELECT project_id, (occurred_at AT TIME ZONE 'UTC')::date, credited_subject, attributed_by,
           sum(sign), sum(sign * coalesce(value_cents, 0))
    FROM (SELECT n.*, 1 AS sign FROM new_rows n
          UNION ALL SELECT o.*, -1 AS sign FROM old_rows o) d
    GROUP BY 1, 2, 3, 4
    HAVING sum(sign) <> 0 OR sum(sign * coalesce(value_cents, 0)) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (project_id, day, subject, attributed_by) DO UPDATE SET
        conversions = r.conversions + EXCLUDED.conversions,
        value_cents = r.value_cents + EXCLUDED.value_cents;
    RETURN NULL;
END $$;
CREATE FUNCTION mailtrail_conversion_rollup_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_rollups AS r
    SELECT project_id, (occurred_at AT TIME ZONE 'UTC')::date, credited_subject, attributed_by,
           sum(sign), sum(sign * coalesce(value_cents, 0))
    FROM (SELECT o.*, -1 AS sign FROM old_rows o) d
    GROUP BY 1, 2, 3, 4
    HAVING sum(sign) <> 0 OR sum(sign * coalesce(value_cents, 0)) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (project_id, day, subject, attributed_by) DO UPDATE SET
        conversions = r.conversions + EXCLUDED.conversions,
        value_cents = r.value_cents + EXCLUDED.value_cents;
    RETURN NULL;
END $$;

CREATE TRIGGER conversions_rollup_insert AFTER INSERT ON conversions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail_conversion_rollup_inserted();
CREATE TRIGGER conversions_rollup_update AFTER UPDATE ON conversions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail_conversion_rollup_updated();
CREATE TRIGGER conversions_rollup_delete AFTER DELETE ON conversions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailtrail_conversion_rollup_deleted();

-- 3. The credit, recomputed for every conversion of the given (backer, project) pairs: the
--    human click of the project by that backer latest at or before the conversion and no more
--    than `window_days` before it; else the latest such open; else none. Ties on time go to the
--    greater (message id, recipient), so the answer is a function of the stored events alone.
--    Only conversions whose credit changes are written. Returns how many changed.
CREATE FUNCTION mailtrail_attribute_conversions(backer_ids bigint[], project_ids bigint[], window_days integer)
RETURNS bigint LANGUAGE sql AS $$
    WITH pairs AS (
        SELECT DISTINCT backer_id, project_id
        FROM unnest(backer_ids, project_ids) AS p(backer_id, project_id)
    ),
    credit AS (
        SELECT c.project_id, c.conversion_id,
               coalesce(x.attributed_by, 'none') AS attributed_by,
               x.message_id, x.recipient, s.subject, x.occurred_at
        FROM pairs JOIN conversions c USING (backer_id, project_id)
        LEFT JOIN LATERAL (
            SELECT CASE e.engagement WHEN 'clicked' THEN 'click' ELSE 'open' END AS attributed_by,
                   e.message_id, e.recipient, e.occurred_at
            FROM email_events e
            WHERE e.backer_id = c.backer_id AND e.project_id = c.project_id
              AND e.engagement IN ('opened', 'clicked') AND NOT e.bot
              AND e.occurred_at <= c.occurred_at
              AND e.occurred_at >= c.occurred_at - make_interval(days => window_days)
            ORDER BY e.engagement = 'clicked' DESC, e.occurred_at DESC,
                     e.message_id COLLATE "C" DESC, e.recipient COLLATE "C" DESC
            LIMIT 1
        ) x ON TRUE
        LEFT JOIN sent_emails s ON s.message_id = x.message_id AND s.recipient = x.recipient
    ),
    changed AS (
        UPDATE conversions c SET
            attributed_by = credit.attributed_by,
            credited_message_id = credit.message_id,
            credited_recipient = credit.recipient,
            credited_subject = credit.subject,
            credited_at = credit.occurred_at,
            attribution_window_days = window_days
        FROM credit
        WHERE c.project_id = credit.project_id AND c.conversion_id = credit.conversion_id
          AND (c.attributed_by, c.credited_message_id, c.credited_recipient, c.credited_subject,
               c.credited_at, c.attribution_window_days)
              IS DISTINCT FROM (credit.attributed_by, credit.message_id, credit.recipient,
               credit.subject, credit.occurred_at, window_days)
        RETURNING 1
    )
    SELECT count(*) FROM changed
$$;

-- Every conversion, again (`mailtrail conversions reattribute`, after a change of window).
CREATE FUNCTION mailtrail_reattribute_all_conversions(window_days integer)
RETURNS bigint LANGUAGE sql AS $$
    SELECT mailtrail_attribute_conversions(
        coalesce(array_agg(backer_id), '{}'), coalesce(array_agg(project_id), '{}'), window_days)
    FROM (SELECT DISTINCT backer_id, project_id FROM conversions) pairs
$$;

-- 4. Recomputing the conversion counters from `conversions` (`mailtrail rollups rebuild`).
CREATE FUNCTION mailtrail_rebuild_conversion_rollups() RETURNS void LANGUAGE sql AS $$
    LOCK TABLE conversions IN SHARE MODE;
    DELETE FROM conversion_rollups;
    INSERT INTO conversion_rollups
    SELECT project_id, (occurred_at AT TIME ZONE 'UTC')::date, credited_subject, attributed_by,
           count(*), coalesce(sum(value_cents), 0)
    FROM conversions
    GROUP BY 1, 2, 3, 4;
$$;
