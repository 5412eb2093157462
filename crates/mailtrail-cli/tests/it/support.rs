//! Running the real `mailtrail` binary against a test's own Postgres database and Redis prefix,
//! and seeding both with the same library calls the worker uses.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use mailtrail_core::{Event, EventKind, EventRow, Severity};
use mailtrail_queue::{DeadLetter, now_ms};
use mailtrail_testing::{TestDatabase, TestRedis, event_at, worker_row};

/// What one run of the binary printed.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the command succeeded.
    pub fn success(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "mailtrail failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// One invocation of `mailtrail`, with an environment of its own (nothing inherited from the
/// developer's shell can leak in).
#[derive(Default)]
pub struct Mailtrail {
    env: Vec<(String, String)>,
    args: Vec<String>,
    stdin: Option<String>,
}

impl Mailtrail {
    /// `mailtrail ARGS...` with no configuration at all.
    pub fn new(args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// Points `DATABASE_URL` at the test's database.
    pub fn database(mut self, database: &TestDatabase) -> Self {
        self.env
            .push(("DATABASE_URL".to_owned(), database.url().to_owned()));
        self
    }

    /// Points `REDIS_URL`, `MAILTRAIL_REDIS_PREFIX` (and on a cluster `MAILTRAIL_REDIS_CLUSTER`
    /// and `MAILTRAIL_QUEUE_SHARDS`) at the test's Redis prefix.
    pub fn redis(mut self, redis: &TestRedis) -> Self {
        self.env.extend(
            redis
                .env()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        self
    }

    /// Sets any other variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Feeds `text` to standard input.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Runs the binary off the async runtime and collects its output.
    pub async fn run(self) -> Run {
        tokio::task::spawn_blocking(move || self.run_blocking())
            .await
            .unwrap()
    }

    /// Runs the binary, blocking, and collects its output. Standard input is a pipe (closed
    /// after the text given to [`Mailtrail::stdin`]), never a terminal.
    pub fn run_blocking(self) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(text) = &self.stdin {
            stdin.write_all(text.as_bytes()).unwrap();
        }
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

/// A day, the unit of dead letters' ages.
pub const DAY: Duration = Duration::from_secs(86_400);

/// A dead letter as a worker writes it, dead for `age` already.
pub fn old_dead_letter(age: Duration, envelope: &str) -> String {
    serde_json::to_string(&DeadLetter {
        reason: "unreadable body".to_owned(),
        dead_at_ms: now_ms() - i64::try_from(age.as_millis()).unwrap(),
        worker: "old-worker".to_owned(),
        envelope: envelope.to_owned(),
    })
    .unwrap()
}

/// Seconds since the epoch of the seeded events: fixed, so snapshots are stable.
pub const T0: i64 = 1_700_000_000;

/// One event to store, built the way the worker builds it.
pub struct Seed {
    event: Event,
    backer: i64,
    project: i64,
    subject: Option<String>,
}

impl Seed {
    /// A `kind` event for `message` to `recipient`, `at` seconds after [`T0`], belonging to
    /// `backer` and `project`.
    pub fn new(
        kind: EventKind,
        message: &str,
        recipient: &str,
        at: i64,
        (backer, project): (i64, i64),
    ) -> Self {
        Self {
            event: event_at(kind, message, recipient, T0 + at),
            backer,
            project,
            subject: None,
        }
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }

    /// Makes it a `failed` event with these details.
    pub fn failure(mut self, severity: Severity, reason: &str, code: &str) -> Self {
        self.event.severity = Some(severity);
        self.event.reason = Some(reason.to_owned());
        self.event.delivery_code = Some(code.to_owned());
        self
    }

    /// Marks an open or click as made by a machine.
    pub fn bot(mut self) -> Self {
        self.event.bot = true;
        self
    }

    /// Sets the clicked URL.
    pub fn url(mut self, url: &str) -> Self {
        self.event.url = Some(url.to_owned());
        self
    }

    /// The row the worker would write.
    pub fn row(&self) -> EventRow {
        worker_row(
            &self.event,
            self.backer,
            self.project,
            self.subject.as_deref(),
        )
    }
}
