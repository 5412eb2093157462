-- One row per sent message and recipient: the order-independent delivery status and engagement.
-- status, status_reason and status_code use the "C" collation so that the precedence tie-breaks
-- compare bytes, exactly as mailtrail-core's reference implementation does.
CREATE TABLE sent_emails (
    id               bigserial   PRIMARY KEY,
    message_id       text        NOT NULL,
    recipient        text        NOT NULL,
    backer_id        bigint      NOT NULL,
    project_id       bigint      NOT NULL,
    subject          text,
    status           text        COLLATE "C" NOT NULL
                     CHECK (status IN ('accepted', 'deferred', 'delivered', 'bounced', 'dropped', 'complained')),
    status_tier      smallint    NOT NULL,
    status_explicit  boolean     NOT NULL,
    status_at        timestamptz NOT NULL,
    status_reason    text        COLLATE "C",
    status_code      text        COLLATE "C",
    opened_count     bigint      NOT NULL DEFAULT 0,
    bot_open_count   bigint      NOT NULL DEFAULT 0,
    first_opened_at  timestamptz,
    last_opened_at   timestamptz,
    clicked_count    bigint      NOT NULL DEFAULT 0,
    first_clicked_at timestamptz,
    last_clicked_at  timestamptz,
    unsubscribed_at  timestamptz,
    event_count      bigint      NOT NULL DEFAULT 0,
    last_event_at    timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sent_emails_message_id_recipient_key UNIQUE (message_id, recipient)
);

-- The statistics filter by backer or by project (and group by subject); (project_id, subject)
-- serves project_id alone too. Every index costs each upsert, so there are no others.
CREATE INDEX sent_emails_backer_id_idx ON sent_emails (backer_id);
CREATE INDEX sent_emails_project_id_subject_idx ON sent_emails (project_id, subject);

-- Every accepted event, append-only, deduplicated on a stable key (see mailtrail-core event_key).
-- Rows of sent_emails can be rebuilt from it.
CREATE TABLE email_events (
    event_key        text        PRIMARY KEY,
    message_id       text        NOT NULL,
    recipient        text        NOT NULL,
    kind             text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    event_id         text,
    backer_id        bigint      NOT NULL,
    project_id       bigint      NOT NULL,
    subject          text,
    status           text        COLLATE "C",
    status_tier      smallint,
    status_explicit  boolean,
    severity         text,
    reason           text        COLLATE "C",
    delivery_code    text        COLLATE "C",
    engagement       text,
    bot              boolean     NOT NULL DEFAULT false,
    url              text,
    received_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX email_events_message_idx ON email_events (message_id, recipient, occurred_at);
CREATE INDEX email_events_recipient_idx ON email_events (recipient, occurred_at);
