//! The real `mailtrail-worker` binary as a child process, for the tests that kill, freeze or
//! stop it: the fault tests and the bookkeeping tests.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};

use mailtrail_testing::{TestRedis, unique_name};

/// A worker process with its log in a file, killed and its log removed on drop.
pub struct WorkerProcess {
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts `mailtrail-worker` as `id` on `database_url` and on `redis`'s prefix, with batches
    /// of 200, a 100 ms claim wait, no migrations and no `/metrics`, and `env` over those.
    pub fn start(database_url: &str, redis: &TestRedis, id: &str, env: &[(&str, &str)]) -> Self {
        // Logs go to stdout, panics to stderr: both into one file.
        let log = std::env::temp_dir().join(format!("{}.log", unique_name(id)));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mailtrail-worker"))
            .env("DATABASE_URL", database_url)
            .envs(redis.env())
            .env("MAILTRAIL_WORKER_ID", id)
            .env("MAILTRAIL_BATCH_SIZE", "200")
            .env("MAILTRAIL_CLAIM_BLOCK_MS", "100")
            .env("MAILTRAIL_MIGRATE", "false")
            .env("MAILTRAIL_METRICS_BIND", "")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) with `kill`.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM, then the exit status and the log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        (status, self.log_text())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
