//! `--chaos-check`: comparing Postgres and Redis with what a chaos run sent, once drained.

use super::*;

/// What `--chaos-check` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChaosCheck {
    /// Good events sent.
    pub expected_events: u64,
    /// Rows of `email_events`.
    pub stored_events: i64,
    /// Distinct event ids among them.
    pub distinct_event_ids: i64,
    /// Good events with no row.
    pub missing_events: i64,
    /// Rows that are no good event of the run.
    pub unexpected_events: i64,
    /// Messages sent.
    pub expected_rows: u64,
    /// Rows of `sent_emails`.
    pub rows: i64,
    /// The sum of `sent_emails.event_count`.
    pub event_count_sum: i64,
    /// Good `opened` events sent.
    pub expected_opens: u64,
    /// The sum of `sent_emails.opened_count`.
    pub opened_sum: i64,
    /// Bad bodies sent.
    pub expected_dead: u64,
    /// Entries of the dead list.
    pub dead: u64,
    /// Distinct bad bodies of the run among them.
    pub dead_garbage: u64,
    /// Events sent without `backer_id`.
    pub expected_skipped: u64,
    /// The skip counts, summed over reasons.
    pub skipped: u64,
    /// Envelopes with a recovery (poison) counter.
    pub recovery_counters: u64,
    /// Envelopes still in the backlog or a processing list.
    pub left_in_queue: u64,
}

impl ChaosCheck {
    /// True when the database and the queue hold exactly the plan.
    pub fn holds(&self) -> bool {
        self.missing_events == 0
            && self.unexpected_events == 0
            && self.stored_events == self.expected_events as i64
            && self.distinct_event_ids == self.stored_events
            && self.rows == self.expected_rows as i64
            && self.event_count_sum == self.expected_events as i64
            && self.opened_sum == self.expected_opens as i64
            && self.dead == self.expected_dead
            && self.dead_garbage == self.expected_dead
            && self.skipped == self.expected_skipped
            && self.left_in_queue == 0
    }

    /// The readable lines.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "email_events: {} rows ({} distinct event ids) for {} good events sent; {} missing, {} unexpected",
            self.stored_events,
            self.distinct_event_ids,
            self.expected_events,
            self.missing_events,
            self.unexpected_events
        )?;
        writeln!(
            out,
            "sent_emails: {} rows for {} messages; event_count sums to {}, opened_count to {} ({} opens sent)",
            self.rows,
            self.expected_rows,
            self.event_count_sum,
            self.opened_sum,
            self.expected_opens
        )?;
        writeln!(
            out,
            "dead letters: {} ({} distinct bad bodies of this run; {} sent)",
            self.dead, self.dead_garbage, self.expected_dead
        )?;
        writeln!(
            out,
            "skipped: {} ({} events without backer_id sent)",
            self.skipped, self.expected_skipped
        )?;
        writeln!(
            out,
            "recovery (poison) counters: {}; left in the queue: {}",
            self.recovery_counters, self.left_in_queue
        )?;
        writeln!(
            out,
            "{}",
            if self.holds() {
                "exactly once: every webhook answered 200 is stored once, dead-lettered once or counted once"
            } else {
                "MISMATCH: the database or the queue does not hold what was sent"
            }
        )
    }
}

#[derive(QueryableByName)]
struct EventFigures {
    #[diesel(sql_type = BigInt)]
    stored: i64,
    #[diesel(sql_type = BigInt)]
    distinct_ids: i64,
    #[diesel(sql_type = BigInt)]
    missing: i64,
    #[diesel(sql_type = BigInt)]
    unexpected: i64,
}

#[derive(QueryableByName)]
struct RowFigures {
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = BigInt)]
    events: i64,
    #[diesel(sql_type = BigInt)]
    opens: i64,
}

/// `--chaos-check`: compares Postgres and Redis with the plan at `plan_path`.
pub async fn check(config: &BenchConfig, plan_path: &Path) -> anyhow::Result<ChaosCheck> {
    // Here only: its `load` would shadow the atomics' elsewhere in this module.
    use diesel_async::RunQueryDsl;

    let plan: ChaosPlan = serde_json::from_slice(
        &std::fs::read(plan_path)
            .with_context(|| format!("cannot read the plan {}", plan_path.display()))?,
    )
    .context("the plan is not a chaos plan")?;
    let mut connection = config.connect_store("--chaos-check").await?;
    let events: EventFigures = diesel::sql_query(
        "WITH plan AS (SELECT unnest($1::text[]) AS event_id)
         SELECT (SELECT count(*) FROM email_events) AS stored,
                (SELECT count(DISTINCT event_id) FROM email_events) AS distinct_ids,
                (SELECT count(*) FROM plan p
                  WHERE NOT EXISTS (SELECT 1 FROM email_events e WHERE e.event_id = p.event_id))
                  AS missing,
                (SELECT count(*) FROM email_events e
                  WHERE e.event_id IS NULL
                     OR NOT EXISTS (SELECT 1 FROM plan p WHERE p.event_id = e.event_id))
                  AS unexpected",
    )
    .bind::<Array<Text>, _>(&plan.good_event_ids)
    .get_result(&mut connection)
    .await
    .context("cannot count email_events")?;
    let rows: RowFigures = diesel::sql_query(
        "SELECT count(*) AS rows, coalesce(sum(event_count), 0)::bigint AS events,
                coalesce(sum(opened_count), 0)::bigint AS opens
         FROM sent_emails",
    )
    .get_result(&mut connection)
    .await
    .context("cannot sum sent_emails")?;

    let queue = config.connect_queue().await?;
    let dead_len = queue.dead_len().await?;
    let mut garbage = BTreeSet::new();
    for entry in queue.dead_letters(0, dead_len.max(1)).await? {
        if let Some(n) = entry
            .parsed
            .as_ref()
            .ok()
            .and_then(|letter| garbage_number(letter, &plan.run))
        {
            garbage.insert(n);
        }
    }
    let skipped = queue
        .skipped_counts()
        .await?
        .iter()
        .map(|skipped| skipped.count)
        .sum();
    let in_flight: u64 = queue
        .in_flight()
        .await?
        .iter()
        .map(|worker| worker.envelopes)
        .sum();
    let recovery_counters: u64 = redis::cmd("HLEN")
        .arg(queue.keys().recovered())
        .query_async(
            &mut redis::Client::open(config.queue_settings().url)?
                .get_multiplexed_async_connection()
                .await?,
        )
        .await?;
    Ok(ChaosCheck {
        expected_events: plan.good_event_ids.len() as u64,
        stored_events: events.stored,
        distinct_event_ids: events.distinct_ids,
        missing_events: events.missing,
        unexpected_events: events.unexpected,
        expected_rows: plan.messages,
        rows: rows.rows,
        event_count_sum: rows.events,
        expected_opens: plan.opens,
        opened_sum: rows.opens,
        expected_dead: plan.garbage,
        dead: dead_len,
        dead_garbage: garbage.len() as u64,
        expected_skipped: plan.uninstrumented,
        skipped,
        recovery_counters,
        left_in_queue: queue.backlog_len().await? + in_flight,
    })
}

/// The number of a run's bad body, if the dead letter is one.
fn garbage_number(letter: &DeadLetter, run: &str) -> Option<u64> {
    let envelope = Envelope::from_json(&letter.envelope).ok()?;
    let body: Value = serde_json::from_slice(&envelope.body_bytes().ok()?).ok()?;
    let data = body.get("event-data")?;
    (data.get("chaos")? == "garbage" && data.get("run")? == run).then(|| data.get("n")?.as_u64())?
}
