//! The overview's project rankings, kept and refreshed in the background.
//!
//! Every other figure on the pages reads a few thousand counter rows at most. Ranking projects
//! reads every project's rows in the range (`mailtrail_store::standings`): at 2,500,000 messages
//! over 90 days that is about 800,000 rows, some 400 ms. A ranking a minute old answers the
//! question it is for (which projects need a look) as well as a fresh one, so:
//!
//! - a range's standings read less than [`FRESH_FOR`] ago are used as they are;
//! - older ones, up to [`KEEP_FOR`], are still shown at once, and one background task reads them
//!   again for the next view (stale while revalidating), so a page never waits for the ranking
//!   of a range someone looked at recently;
//! - only a range nobody asked for in [`KEEP_FOR`] (the first view after a start, say) is read
//!   while the page waits.
//!
//! The page says how old a ranking may be. The cache belongs to one running API (tests start
//! several, each with its own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mailtrail_store::StorePool;
use mailtrail_store::standings::{ProjectStanding, project_standings};

use super::error::PageError;

/// How long a range's standings are used without reading them again.
pub const FRESH_FOR: Duration = Duration::from_secs(60);
/// How long a range's standings are kept at all (shown while a refresh runs).
pub const KEEP_FOR: Duration = Duration::from_secs(15 * 60);
/// Ranges kept at once (each is a few hundred KB at most); the oldest goes first.
const MAX_RANGES: usize = 32;

/// A range and the ranking's minimum of messages.
type Key = (NaiveDate, NaiveDate, u64);
/// Standings as read at one moment.
#[derive(Debug)]
struct Kept {
    read_at: Instant,
    standings: Arc<Vec<ProjectStanding>>,
    /// A background task is reading them again.
    refreshing: bool,
}

/// What the cache holds for a range.
enum Held {
    Fresh(Arc<Vec<ProjectStanding>>),
    /// Stale; `true` when the caller should start the refresh.
    Stale(Arc<Vec<ProjectStanding>>, bool),
    Missing,
}

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

    fn lookup(&self, key: &Key) -> Held {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match kept.get_mut(key) {
            Some(entry) if entry.read_at.elapsed() < FRESH_FOR => {
                Held::Fresh(Arc::clone(&entry.standings))
            }
            Some(entry) if entry.read_at.elapsed() < KEEP_FOR => {
                let start_refresh = !entry.refreshing;
                entry.refreshing = true;
                Held::Stale(Arc::clone(&entry.standings), start_refresh)
            }
            _ => Held::Missing,
        }
    }

    fn keep(&self, key: Key, standings: Arc<Vec<ProjectStanding>>) {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.retain(|_, entry| entry.read_at.elapsed() < KEEP_FOR);
        if kept.len() >= MAX_RANGES
            && !kept.contains_key(&key)
            && let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, entry)| entry.read_at)
                .map(|(key, _)| *key)
        {
            kept.remove(&oldest);
        }
        let entry = Kept {
            read_at: Instant::now(),
            standings,
            refreshing: false,
        };
        kept.insert(key, entry);
    }

    fn refresh_failed(&self, key: &Key) {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = kept.get_mut(key) {
            entry.refreshing = false;
        }
    }

    async fn read(pool: &StorePool, key: Key) -> Result<Arc<Vec<ProjectStanding>>, PageError> {
        let (since, until, min_messages) = key;
        let mut connection = crate::routes::connection(pool).await?;
        Ok(Arc::new(
            project_standings(&mut connection, Some(since), Some(until), min_messages).await?,
        ))
    }

    /// Every project with at least `min_messages` in the range: read less than [`FRESH_FOR`]
    /// ago, or up to [`KEEP_FOR`] ago while a background task reads them again.
    pub async fn standings(
        self: Arc<Self>,
        pool: &StorePool,
        since: NaiveDate,
        until: NaiveDate,
        min_messages: u64,
    ) -> Result<Arc<Vec<ProjectStanding>>, PageError> {
        let key = (since, until, min_messages);
        match self.lookup(&key) {
            Held::Fresh(standings) => Ok(standings),
            Held::Stale(standings, start_refresh) => {
                if start_refresh {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        match Self::read(&pool, key).await {
                            Ok(standings) => self.keep(key, standings),
                            Err(error) => {
                                tracing::warn!(%error, "the overview's rankings could not be refreshed");
                                self.refresh_failed(&key);
                            }
                        }
                    });
                }
                Ok(standings)
            }
            Held::Missing => {
                let standings = Self::read(pool, key).await?;
                self.keep(key, Arc::clone(&standings));
                Ok(standings)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_range_is_reused_then_refreshed_once_and_the_oldest_goes_when_full() {
        let rankings = Rankings::new();
        let day = |n: u32| NaiveDate::from_ymd_opt(2026, 1, n).unwrap();
        let key = (day(1), day(2), 20);
        assert!(matches!(rankings.lookup(&key), Held::Missing));
        rankings.keep(key, Arc::new(Vec::new()));
        assert!(matches!(rankings.lookup(&key), Held::Fresh(_)));
        assert!(matches!(
            rankings.lookup(&(day(1), day(3), 20)),
            Held::Missing
        ));
        // Age the entry: the first look starts the refresh, the next ones do not.
        let stale = Instant::now().checked_sub(FRESH_FOR + Duration::from_secs(1));
        rankings.kept.lock().unwrap().get_mut(&key).unwrap().read_at = stale.unwrap();
        assert!(matches!(rankings.lookup(&key), Held::Stale(_, true)));
        assert!(matches!(rankings.lookup(&key), Held::Stale(_, false)));
        rankings.refresh_failed(&key);
        assert!(matches!(rankings.lookup(&key), Held::Stale(_, true)));
        for n in 0..MAX_RANGES as u64 {
            rankings.keep((day(1), day(2), 100 + n), Arc::new(Vec::new()));
        }
        let kept = rankings.kept.lock().unwrap();
        assert_eq!(kept.len(), MAX_RANGES);
        assert!(!kept.contains_key(&key), "the oldest range was dropped");
    }
}
