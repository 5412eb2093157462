//! The overview's project rankings, kept for a minute.
//!
//! Every other figure on the pages reads a few thousand counter rows at most. Ranking projects
//! reads every project's rows in the range (`mailtrail_store::standings`): at 2,500,000 messages
//! over 90 days that is hundreds of thousands of rows, hundreds of milliseconds. A ranking a
//! minute old answers the question it is for (which projects need a look) as well as a fresh
//! one, so each range's standings are kept for [`FRESH_FOR`] and the page says so. The cache
//! belongs to one running API (tests start several, each with its own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mailtrail_store::standings::{ProjectStanding, project_standings};
use mailtrail_store::{StoreConnection, StoreError};

/// How long a range's standings are reused.
pub const FRESH_FOR: Duration = Duration::from_secs(60);
/// Ranges kept at once (each is a few hundred KB at most); the oldest goes first.
const MAX_RANGES: usize = 32;

/// A range and the ranking's minimum of messages.
type Key = (NaiveDate, NaiveDate, u64);
/// Standings, and when they were read.
type Kept = (Instant, Arc<Vec<ProjectStanding>>);

/// Standings by range, each with the moment it was read.
#[derive(Debug, Default)]
pub struct Rankings {
    kept: Mutex<HashMap<Key, Kept>>,
}

impl Rankings {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn fresh(&self, key: &Key) -> Option<Arc<Vec<ProjectStanding>>> {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.get(key)
            .filter(|(read_at, _)| read_at.elapsed() < FRESH_FOR)
            .map(|(_, standings)| Arc::clone(standings))
    }

    fn keep(&self, key: Key, standings: Arc<Vec<ProjectStanding>>) {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.retain(|_, (read_at, _)| read_at.elapsed() < FRESH_FOR);
        if kept.len() >= MAX_RANGES
            && let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, (read_at, _))| *read_at)
                .map(|(key, _)| *key)
        {
            kept.remove(&oldest);
        }
        kept.insert(key, (Instant::now(), standings));
    }

    /// Every project with at least `min_messages` in the range, read at most [`FRESH_FOR`] ago.
    pub async fn standings(
        &self,
        connection: &mut StoreConnection,
        since: NaiveDate,
        until: NaiveDate,
        min_messages: u64,
    ) -> Result<Arc<Vec<ProjectStanding>>, StoreError> {
        let key = (since, until, min_messages);
        if let Some(standings) = self.fresh(&key) {
            return Ok(standings);
        }
        let standings =
            Arc::new(project_standings(connection, Some(since), Some(until), min_messages).await?);
        self.keep(key, Arc::clone(&standings));
        Ok(standings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_range_is_reused_and_the_oldest_goes_when_full() {
        let rankings = Rankings::new();
        let day = |n: u32| NaiveDate::from_ymd_opt(2026, 1, n).unwrap();
        let key = (day(1), day(2), 20);
        assert!(rankings.fresh(&key).is_none());
        rankings.keep(key, Arc::new(Vec::new()));
        assert!(rankings.fresh(&key).is_some());
        assert!(rankings.fresh(&(day(1), day(3), 20)).is_none());
        for n in 0..MAX_RANGES as u64 {
            rankings.keep((day(1), day(2), 100 + n), Arc::new(Vec::new()));
        }
        let kept = rankings.kept.lock().unwrap();
        assert_eq!(kept.len(), MAX_RANGES);
        assert!(!kept.contains_key(&key), "the oldest range was dropped");
    }
}
