//! Session records this instance read from Redis, kept while Redis tells it when they change
//! (`[sessions] local_cache`, on by default).
//!
//! Redis's server-assisted client-side caching in broadcast mode: the connection runs
//! `CLIENT TRACKING ON BCAST PREFIX {prefix} NOLOOP` (RESP3), so Redis pushes an invalidation on
//! it whenever another client writes, deletes or expires a key under the prefix. This instance's own
//! writes and deletes drop the entry themselves, before and after the command.
//!
//! A push alone arrives "soon", not before the next request, so an entry is only used after a
//! **fence**: a `CLIENT TRACKINGINFO` sent on the same connection after the request arrived. Redis
//! answers it in order, after every push for a write that completed before it, and the client
//! hands those pushes over before the answer, so once the answer is in every earlier change has
//! been applied. Requests that arrive together share one fence, so Redis answers one small command
//! per batch instead of a `GET` per request. The answer also shows tracking is still on: a
//! reconnected connection tracks nothing, and then the cache is emptied and set up again.
//!
//! What keeps an entry from outliving the record it copies:
//! - it is used only after a fence sent after the request arrived found tracking on;
//! - it is filled only while tracking is on, and only if no invalidation, write, flush or tracking
//!   change happened on this instance between the start of the read and the fill (the epoch);
//! - this instance's own writes and deletes drop the entry before and after the command;
//! - losing tracking, a failed fence and a lagging invalidation stream empty the cache;
//! - every entry is used for at most [`MAX_AGE`], whatever happens to the pushes (this bounds the
//!   one change Redis announces in a way the client drops: `FLUSHALL`/`FLUSHDB`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::prelude::*;
use fred::types::client::Invalidation;
use tokio::sync::{Notify, broadcast};

/// The longest an entry is used, even if an invalidation was somehow lost.
pub const MAX_AGE: Duration = Duration::from_secs(5);
/// Entries kept; the cache is emptied when full.
const MAX_ENTRIES: usize = 10_000;
/// Fences awaiting their answer at once.
const MAX_IN_FLIGHT: usize = 1;
/// After Redis refuses to track, how long before asking again.
const RETRY_TRACKING: Duration = Duration::from_secs(1);

/// A record's stored bytes and when they were read.
type Entry = (Bytes, Instant);

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Whether Redis is tracking for us; nothing is filled otherwise.
    tracking: bool,
}

#[derive(Default)]
pub struct RecordCache {
    entries: Mutex<Entries>,
    /// Bumped, under the lock, by every invalidation, own write, flush and tracking change.
    epoch: AtomicU64,
}

impl RecordCache {
    /// The record at `key`, if it is cached and young enough. Only to be used after a fence.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        let (value, at) = entries.map.get(key)?;
        (at.elapsed() < MAX_AGE).then(|| value.clone())
    }

    /// Entries held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
    }

    fn is_tracking(&self) -> bool {
        self.entries.lock().map(|e| e.tracking).unwrap_or(false)
    }

    /// Taken before the read that may fill an entry.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Fills `key` if Redis is tracking and nothing changed since `epoch` was taken.
    pub fn fill(&self, epoch: u64, key: &str, value: Bytes) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if !entries.tracking || self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES {
            entries.map.clear();
        }
        entries.map.insert(key.to_string(), (value, Instant::now()));
    }

    /// Drops `keys` (they were written, deleted or invalidated).
    pub fn forget<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for key in keys {
            entries.map.remove(key);
        }
    }

    /// Drops everything (invalidations may have been missed).
    pub fn flush(&self) {
        self.set(None);
    }

    /// Drops everything and records whether Redis now tracks for us.
    fn set_tracking(&self, on: bool) {
        self.set(Some(on));
    }

    fn set(&self, tracking: Option<bool>) {
        if let Ok(mut entries) = self.entries.lock() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            entries.map.clear();
            if let Some(on) = tracking {
                entries.tracking = on;
            }
        }
    }

    #[cfg(test)]
    fn age(&self, key: &str, by: Duration) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some((_, at)) = entries.map.get_mut(key)
            && let Some(earlier) = at.checked_sub(by)
        {
            *at = earlier;
        }
    }
}

/// What a fence found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// Every change Redis made before the fence was applied: cached entries may be used.
    Fresh,
    /// Redis is not tracking for us (yet): read from Redis.
    Untracked,
    /// Redis did not answer.
    Failed,
}

/// The requests one fence answers: those that arrived before it was sent.
#[derive(Default)]
struct Batch {
    outcome: OnceLock<Fence>,
    answered: Notify,
}

impl Batch {
    fn answer(&self, outcome: Fence) {
        let _ = self.outcome.set(outcome);
        self.answered.notify_waiters();
    }
}

/// The cache and the task that keeps it in step with Redis.
pub struct Tracker {
    pub cache: RecordCache,
    /// The batch the next fence will answer; the task swaps in a new one as it sends it.
    next: Mutex<Arc<Batch>>,
    want: Notify,
    warned: AtomicBool,
}

impl Tracker {
    /// Starts tracking keys under `prefix` on `client` (RESP3, not a Cluster).
    pub fn start(client: &Client, prefix: &str) -> Arc<Tracker> {
        let tracker = Arc::new(Tracker {
            cache: RecordCache::default(),
            next: Mutex::new(Arc::default()),
            want: Notify::new(),
            warned: AtomicBool::new(false),
        });
        let task = TrackerTask {
            tracker: tracker.clone(),
            client: client.clone(),
            prefix: prefix.to_string(),
            pushes: client.invalidation_rx(),
            tracking: false,
            setups: 0,
            retry_at: None,
        };
        tokio::spawn(task.run());
        // Sets tracking up as soon as the client is connected.
        tracker.want.notify_one();
        tracker
    }

    /// Waits for a fence sent after this call and returns what it found.
    pub async fn fence(&self) -> Fence {
        let Some(batch) = self.next.lock().ok().map(|b| b.clone()) else {
            return Fence::Failed;
        };
        let answered = batch.answered.notified();
        tokio::pin!(answered);
        answered.as_mut().enable();
        self.want.notify_one();
        if let Some(outcome) = batch.outcome.get() {
            return *outcome;
        }
        answered.await;
        batch.outcome.get().copied().unwrap_or(Fence::Failed)
    }

    /// Ends the batch waiting for the next fence, and returns it.
    fn take_batch(&self) -> Option<Arc<Batch>> {
        self.next.lock().ok().map(|mut b| std::mem::take(&mut *b))
    }

    /// Asks for tracking to be set up again if it is not on (a read missed the cache).
    pub fn nudge(&self) {
        if !self.cache.is_tracking() {
            self.want.notify_one();
        }
    }
}

struct TrackerTask {
    tracker: Arc<Tracker>,
    client: Client,
    prefix: String,
    pushes: broadcast::Receiver<Invalidation>,
    /// Whether this task turned tracking on for the current connection.
    tracking: bool,
    /// Tracking setups done so far.
    setups: u64,
    retry_at: Option<tokio::time::Instant>,
}

impl TrackerTask {
    async fn run(mut self) {
        use futures::StreamExt;
        // Fences go out as requests ask for them, at most MAX_IN_FLIGHT at a time (the requests
        // arriving meanwhile gather in the next batch), pipelined on the connection; their answers
        // come back in order.
        let mut in_flight = futures::stream::FuturesOrdered::new();
        loop {
            tokio::select! {
                () = self.tracker.want.notified(), if in_flight.len() < MAX_IN_FLIGHT => {
                    let Some(batch) = self.tracker.take_batch() else { break };
                    if !self.tracking && !self.start_tracking().await {
                        batch.answer(Fence::Untracked);
                        continue;
                    }
                    let (client, setup) = (self.client.clone(), self.setups);
                    in_flight.push_back(async move {
                        let info: Result<Value, _> = client
                            .custom(fred::cmd!("CLIENT"), vec!["TRACKINGINFO"])
                            .await;
                        (batch, setup, info)
                    });
                }
                Some((batch, setup, info)) = in_flight.next() => {
                    // Every push Redis sent before this answer was handed over before it.
                    self.drain();
                    batch.answer(self.judge(setup, info));
                }
                push = self.pushes.recv() => {
                    if !self.apply(push) {
                        break;
                    }
                }
            }
        }
        // The client is gone: the waiting batch, and every later request, find it failed.
        self.tracker.cache.set_tracking(false);
        if let Ok(batch) = self.tracker.next.lock() {
            batch.answer(Fence::Failed);
        }
    }

    /// What a fence's answer means; `setup` is the tracking setup it was sent under.
    fn judge(&mut self, setup: u64, info: Result<Value, fred::error::Error>) -> Fence {
        if setup != self.setups || !self.tracking {
            // Sent before tracking was (re)started: it says nothing about the current setup.
            return Fence::Untracked;
        }
        match info {
            Ok(info) if tracks(&info, &self.prefix) => Fence::Fresh,
            Ok(_) => {
                // A new connection: what happened in between was not pushed to us.
                self.stop_tracking();
                Fence::Untracked
            }
            Err(_) => {
                self.stop_tracking();
                Fence::Failed
            }
        }
    }

    fn stop_tracking(&mut self) {
        self.tracking = false;
        self.tracker.cache.set_tracking(false);
    }

    /// `CLIENT TRACKING ON BCAST PREFIX {prefix} NOLOOP` on the current connection.
    async fn start_tracking(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if self.retry_at.is_some_and(|at| now < at) || !self.client.is_connected() {
            return false;
        }
        self.tracker.cache.set_tracking(false);
        let pipeline = self.client.pipeline();
        let off: Result<(), _> = pipeline
            .custom(fred::cmd!("CLIENT"), vec!["TRACKING", "OFF"])
            .await;
        let on: Result<(), _> = pipeline
            .custom(
                fred::cmd!("CLIENT"),
                vec!["TRACKING", "ON", "BCAST", "PREFIX", &self.prefix, "NOLOOP"],
            )
            .await;
        let answers = match off.and(on) {
            Ok(()) => pipeline.try_all::<Value>().await,
            Err(e) => vec![Err(e)],
        };
        if let Some(Err(e)) = answers.into_iter().find(|a| a.is_err()) {
            self.retry_at = Some(now + RETRY_TRACKING);
            if !self.tracker.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "Redis refused client tracking; session records are read on every request until it accepts");
            }
            return false;
        }
        self.drain();
        self.tracking = true;
        self.setups += 1;
        self.retry_at = None;
        // Reads that started before tracking was on must not fill.
        self.tracker.cache.set_tracking(true);
        true
    }

    /// Applies the pushes already handed over.
    fn drain(&mut self) {
        loop {
            match self.pushes.try_recv() {
                Ok(push) => self.forget(&push),
                Err(broadcast::error::TryRecvError::Empty) => return,
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.tracker.cache.flush(),
                Err(broadcast::error::TryRecvError::Closed) => {
                    self.stop_tracking();
                    return;
                }
            }
        }
    }

    /// `false` once the client is gone.
    fn apply(&mut self, push: Result<Invalidation, broadcast::error::RecvError>) -> bool {
        match push {
            Ok(push) => self.forget(&push),
            Err(broadcast::error::RecvError::Lagged(_)) => self.tracker.cache.flush(),
            Err(broadcast::error::RecvError::Closed) => return false,
        }
        true
    }

    fn forget(&self, push: &Invalidation) {
        if push.keys.is_empty() {
            self.tracker.cache.flush();
        } else {
            self.tracker
                .cache
                .forget(push.keys.iter().filter_map(|k| k.as_str()));
        }
    }
}

/// Whether a `CLIENT TRACKINGINFO` answer says this connection tracks `prefix` in broadcast mode.
fn tracks(info: &Value, prefix: &str) -> bool {
    let Value::Map(map) = info else {
        return false;
    };
    let strings = |name: &str| -> Vec<String> {
        map.get(&Key::from(name))
            .and_then(|v| v.clone().convert::<Vec<String>>().ok())
            .unwrap_or_default()
    };
    let flags = strings("flags");
    let on = flags.iter().any(|f| f == "on") && flags.iter().any(|f| f == "bcast");
    on && strings("prefixes").iter().any(|p| p == prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracking() -> RecordCache {
        let c = RecordCache::default();
        c.set_tracking(true);
        c
    }

    #[test]
    fn fills_and_answers() {
        let c = tracking();
        let e = c.epoch();
        c.fill(e, "k", Bytes::from_static(b"v1"));
        assert_eq!(c.get("k").as_deref(), Some(&b"v1"[..]));
        assert_eq!(c.get("other"), None);
    }

    #[test]
    fn nothing_is_filled_while_redis_is_not_tracking() {
        let c = RecordCache::default();
        c.fill(c.epoch(), "k", Bytes::from_static(b"v"));
        assert_eq!(c.get("k"), None);
        let c = tracking();
        c.fill(c.epoch(), "k", Bytes::from_static(b"v"));
        c.set_tracking(false);
        assert_eq!(c.get("k"), None, "losing tracking empties the cache");
        c.fill(c.epoch(), "k", Bytes::from_static(b"v"));
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn a_read_that_started_before_tracking_was_on_does_not_fill() {
        let c = RecordCache::default();
        let e = c.epoch();
        c.set_tracking(true);
        c.fill(e, "k", Bytes::from_static(b"old"));
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn an_invalidation_during_the_read_keeps_the_read_out() {
        let c = tracking();
        let e = c.epoch();
        // The push for a write on another instance overtook the answer to our read.
        c.forget(["k"]);
        c.fill(e, "k", Bytes::from_static(b"old"));
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn a_flush_during_the_read_keeps_the_read_out() {
        let c = tracking();
        let e = c.epoch();
        c.flush();
        c.fill(e, "k", Bytes::from_static(b"old"));
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn forget_and_flush_drop_entries() {
        let c = tracking();
        c.fill(c.epoch(), "a", Bytes::from_static(b"1"));
        c.fill(c.epoch(), "b", Bytes::from_static(b"2"));
        c.forget(["a"]);
        assert_eq!(c.get("a"), None);
        assert!(c.get("b").is_some());
        c.flush();
        assert_eq!(c.get("b"), None);
    }

    #[test]
    fn an_entry_is_used_for_max_age_at_most() {
        let c = tracking();
        c.fill(c.epoch(), "k", Bytes::from_static(b"v"));
        c.age("k", MAX_AGE);
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn is_bounded() {
        let c = tracking();
        for i in 0..=MAX_ENTRIES {
            c.fill(c.epoch(), &i.to_string(), Bytes::from_static(b"v"));
        }
        assert!(c.len() <= MAX_ENTRIES);
    }

    #[test]
    fn trackinginfo_must_show_broadcast_tracking_of_our_prefix() {
        let info = |flags: &[&str], prefixes: &[&str]| {
            let strings = |s: &[&str]| Value::Array(s.iter().map(|x| Value::from(*x)).collect());
            let mut map = HashMap::new();
            map.insert(Key::from("flags"), strings(flags));
            map.insert(Key::from("redirect"), Value::Integer(-1));
            map.insert(Key::from("prefixes"), strings(prefixes));
            Value::Map(map.try_into().unwrap())
        };
        assert!(tracks(&info(&["on", "bcast", "noloop"], &["s:"]), "s:"));
        assert!(!tracks(&info(&["off"], &[]), "s:"));
        assert!(!tracks(&info(&["on"], &[]), "s:"));
        assert!(!tracks(&info(&["on", "bcast"], &["other:"]), "s:"));
        assert!(!tracks(&Value::Null, "s:"));
    }
}
