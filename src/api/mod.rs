//! The management API (`--api ADDR`): JSON under `/api/v1` behind a bearer
//! token, and a status page at `/`, served by the control thread over the
//! same HTTP connection handling as the tracker, never by a packet worker.
//!
//! - [`serve`]: framing of the (small) request body, authentication, routing
//!   and the JSON replies;
//! - [`history`]: the hour of stats samples behind `/stats` rates and
//!   `/stats/history`;
//! - [`manage`]: access-list and key changes written back to their files;
//! - [`torrust`]: torrust-tracker's v1 REST API over the same state and
//!   files (`--torrust-api`), for tools such as torrust-index;
//! - [`client`]: `shoal api …`, the command-line client.
//!
//! Guarantees: every `/api/v1` request is checked against the token in
//! constant time before anything else, and a refusal is counted
//! (`shoal_rejects_total{reason="api_unauthorized"}`); the token is never
//! logged nor shown by `Debug`. This path may allocate (it is not the
//! per-packet path) but reads at most [`MAX_BODY`] bytes of body.

pub mod client;
pub mod history;
pub mod manage;
pub mod serve;
pub mod torrust;

use crate::stats::Registry;
use crate::time::Now;
use crate::tracker::Tracker;
use history::{History, Sample};
use manage::Files;
use parking_lot::Mutex;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use serve::{serve, Request, Served};

/// Largest request body accepted (the largest the API takes is
/// `{"valid_for": N}`); more is 413.
pub const MAX_BODY: usize = 1024;
/// Most torrents one `/torrents` page lists.
pub const MAX_LIMIT: usize = 1000;
/// Shortest token accepted: a guessable token on a management port is an open door.
pub const MIN_TOKEN_LEN: usize = 16;

/// The API's bearer token. `Debug` is redacted; equality is constant time.
#[derive(Clone)]
pub struct ApiToken(Box<[u8]>);

impl ApiToken {
    /// A token from a flag, the environment or a file's first line (spaces
    /// and line ends around it are dropped). At least [`MIN_TOKEN_LEN`]
    /// visible ASCII characters, so it fits an `Authorization` header as is.
    pub fn parse(s: &str) -> Result<ApiToken, String> {
        let t = s.trim();
        if t.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the API token must be at least {MIN_TOKEN_LEN} characters"
            ));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the API token must be visible ASCII characters, without spaces".into());
        }
        Ok(ApiToken(t.as_bytes().into()))
    }

    /// Whether `presented` is this token. The time taken depends only on the
    /// presented length, not on where (or whether) it differs.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let stored = &self.0;
        let mut diff = u8::from(presented.len() != stored.len());
        for (i, &b) in presented.iter().enumerate() {
            diff |= b ^ stored.get(i % stored.len().max(1)).copied().unwrap_or(0);
        }
        // Keep the fold from being turned into an early exit.
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl PartialEq for ApiToken {
    fn eq(&self, other: &ApiToken) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for ApiToken {}

/// The API's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiConfig {
    /// The bearer token; required when an `--api` address is given.
    pub token: Option<ApiToken>,
}

/// Settings of the rest of the server that `/api/v1/stats` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub workers: usize,
    pub http_max_connections: usize,
    pub http_idle_timeout: Duration,
}

/// What the API reads and changes: the tracker, the counters, the stats
/// history, and the access files once the server hands them over. Nothing
/// else of the server.
#[derive(Debug)]
pub struct Api {
    token: ApiToken,
    tracker: Arc<Tracker>,
    registry: Arc<Registry>,
    facts: Facts,
    history: Mutex<History>,
    /// When the next sample is due (ms): the loop turn that checks reads
    /// this atomic, not the history's lock, which API readers also take.
    next_sample_ms: AtomicU64,
    /// Shared with the cluster, which applies other instances' changes
    /// through the same files.
    files: OnceLock<Arc<Files>>,
}

impl Api {
    pub fn new(
        token: ApiToken,
        tracker: Arc<Tracker>,
        registry: Arc<Registry>,
        facts: Facts,
    ) -> Api {
        Api {
            token,
            tracker,
            registry,
            facts,
            history: Mutex::new(History::new()),
            next_sample_ms: AtomicU64::new(history::SAMPLE_MS),
            files: OnceLock::new(),
        }
    }

    /// Manage the access files behind `files` (at most once).
    pub fn set_files(&self, files: Arc<Files>) -> Result<(), Arc<Files>> {
        self.files.set(files)
    }

    pub fn files(&self) -> Option<&Files> {
        self.files.get().map(|f| &**f)
    }

    /// Take a history sample if one is due (called by the control thread
    /// each turn; the totals are read only when due, as that locks every
    /// shard once).
    pub fn tick(&self, now: Now) {
        let now_ms = now.ms();
        if now_ms < self.next_sample_ms.load(Ordering::Relaxed) {
            return;
        }
        // Read outside the history lock: the API's readers never wait on
        // the shard walk.
        let sample = Sample::read(&self.registry, self.tracker.swarm().totals(), now_ms);
        let mut h = self.history.lock();
        if h.due(now_ms) {
            h.push(sample);
        }
        self.next_sample_ms
            .store(now_ms + history::SAMPLE_MS, Ordering::Relaxed);
    }

    pub(crate) fn history(&self) -> parking_lot::MutexGuard<'_, History> {
        self.history.lock()
    }

    pub(crate) fn token(&self) -> &ApiToken {
        &self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules_and_redaction() {
        assert!(ApiToken::parse("short").is_err());
        assert!(ApiToken::parse("has a space inside it").is_err());
        let t = ApiToken::parse("  s3cret-token-0123456789\n").unwrap();
        assert!(t.matches(b"s3cret-token-0123456789"));
        assert!(!t.matches(b"s3cret-token-012345678"));
        assert!(!t.matches(b"s3cret-token-01234567890"));
        assert!(!t.matches(b"S3cret-token-0123456789"));
        assert!(!t.matches(b""));
        assert_eq!(format!("{t:?}"), "ApiToken(<redacted>)");
    }

    #[test]
    fn tick_samples_every_ten_seconds_only() {
        let api = Api::new(
            ApiToken::parse("0123456789abcdef").unwrap(),
            Arc::new(Tracker::new(crate::tracker::TrackerConfig::default())),
            Arc::new(Registry::default()),
            Facts {
                workers: 1,
                http_max_connections: 1,
                http_idle_timeout: Duration::from_secs(1),
            },
        );
        for ms in (0..=35_000).step_by(250) {
            api.tick(Now::from_ms(ms));
        }
        // The zero sample, then 10, 20 and 30 s.
        let times: Vec<u64> = api.history().iter().map(|s| s.t_ms).collect();
        assert_eq!(times, [0, 10_000, 20_000, 30_000]);
    }
}
