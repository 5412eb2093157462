-- Back to one plain table: the rows are copied out of the partitions, which are dropped with it.
CREATE TABLE email_events_plain (
    event_key         text        PRIMARY KEY,
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
);
INSERT INTO email_events_plain SELECT * FROM email_events;
-- Other indexes (added by other migrations) move to the plain table with their definitions.
DO $$
DECLARE
    old_index record;
BEGIN
    FOR old_index IN
        SELECT schemaname, indexname, indexdef FROM pg_indexes
        WHERE tablename = 'email_events' AND schemaname = current_schema()
          AND indexname NOT IN ('email_events_pkey', 'email_events_message_idx',
                                'email_events_recipient_idx')
    LOOP
        EXECUTE format('DROP INDEX %I.%I', old_index.schemaname, old_index.indexname);
        EXECUTE replace(replace(old_index.indexdef, ' ON ONLY ', ' ON '),
                        format(' ON %I.email_events ', old_index.schemaname),
                        format(' ON %I.email_events_plain ', old_index.schemaname));
    END LOOP;
END $$;
DROP TABLE email_events;
DROP FUNCTION mailtrail_create_event_partition(date);
DROP INDEX sent_emails_recipient_idx;
ALTER TABLE email_events_plain RENAME TO email_events;
ALTER TABLE email_events RENAME CONSTRAINT email_events_plain_pkey TO email_events_pkey;
CREATE INDEX email_events_message_idx ON email_events (message_id, recipient, occurred_at);
CREATE INDEX email_events_recipient_idx ON email_events (recipient, occurred_at);
