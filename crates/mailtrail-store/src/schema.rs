//! The diesel schema of mailtrail's tables (see `migrations/` for the SQL and its comments).

diesel::table! {
    /// One row per sent message and recipient.
    sent_emails (id) {
        id -> BigInt,
        message_id -> Text,
        recipient -> Text,
        backer_id -> BigInt,
        project_id -> BigInt,
        subject -> Nullable<Text>,
        status -> Text,
        status_tier -> SmallInt,
        status_explicit -> Bool,
        status_at -> Timestamptz,
        status_reason -> Nullable<Text>,
        status_code -> Nullable<Text>,
        opened_count -> BigInt,
        bot_open_count -> BigInt,
        first_opened_at -> Nullable<Timestamptz>,
        last_opened_at -> Nullable<Timestamptz>,
        clicked_count -> BigInt,
        bot_click_count -> BigInt,
        first_clicked_at -> Nullable<Timestamptz>,
        last_clicked_at -> Nullable<Timestamptz>,
        unsubscribed_at -> Nullable<Timestamptz>,
        event_count -> BigInt,
        last_event_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        first_event_at -> Timestamptz,
        recipient_as_sent -> Nullable<Text>,
    }
}

diesel::table! {
    /// Every accepted event, append-only; partitioned by month of `occurred_at`.
    email_events (event_key, occurred_at) {
        event_key -> Text,
        message_id -> Text,
        recipient -> Text,
        kind -> Text,
        occurred_at -> Timestamptz,
        event_id -> Nullable<Text>,
        backer_id -> BigInt,
        project_id -> BigInt,
        subject -> Nullable<Text>,
        status -> Nullable<Text>,
        status_tier -> Nullable<SmallInt>,
        status_explicit -> Nullable<Bool>,
        severity -> Nullable<Text>,
        reason -> Nullable<Text>,
        delivery_code -> Nullable<Text>,
        engagement -> Nullable<Text>,
        bot -> Bool,
        url -> Nullable<Text>,
        received_at -> Timestamptz,
        bot_kind -> Nullable<Text>,
        recipient_as_sent -> Nullable<Text>,
    }
}

diesel::table! {
    /// Counters per project, day of the message's first event (UTC), subject and status; kept by
    /// triggers on `sent_emails` in the same transaction as the rows.
    project_rollups (project_id, day, subject, status) {
        project_id -> BigInt,
        day -> Date,
        subject -> Nullable<Text>,
        status -> Text,
        messages -> BigInt,
        opened_messages -> BigInt,
        clicked_messages -> BigInt,
        human_opens -> BigInt,
        bot_opens -> BigInt,
        human_clicks -> BigInt,
        bot_clicks -> BigInt,
    }
}

diesel::table! {
    /// The same counters per day and status, for the whole system.
    system_rollups (day, status) {
        day -> Date,
        status -> Text,
        messages -> BigInt,
        opened_messages -> BigInt,
        clicked_messages -> BigInt,
        human_opens -> BigInt,
        bot_opens -> BigInt,
        human_clicks -> BigInt,
        bot_clicks -> BigInt,
    }
}
