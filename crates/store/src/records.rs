//! Call records: one row per finished call (who called whom, when, how long, how it ended).
//!
//! The proxy finishes a call under the engine lock, so records are not written there: a
//! [`RecordWriter`] thread takes them from a channel and writes whatever has queued in one
//! transaction. A record is written within milliseconds of the call's end; one that is still
//! queued when the process is killed is lost (the call itself is over by then, unlike a
//! registration, which is why bindings are written before their 200 and records are not).

use std::fmt;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::subscribers::StoreError;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A 2xx was forwarded to the caller.
    Answered,
    /// Every branch was busy (486, 600).
    Busy,
    /// Nobody answered before the ring timeout, or every branch timed out (408, 480).
    NoAnswer,
    /// The caller sent CANCEL before an answer.
    Cancelled,
    /// Any other final outcome (404, 480 for an unregistered callee, 5xx, ...).
    Failed,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no-answer",
            Disposition::Cancelled => "cancelled",
            Disposition::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Disposition> {
        [
            Disposition::Answered,
            Disposition::Busy,
            Disposition::NoAnswer,
            Disposition::Cancelled,
            Disposition::Failed,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finished call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: String,
    /// The caller's user part (authenticated) and the callee's (the Request-URI user).
    pub caller: String,
    pub callee: String,
    /// Unix times in milliseconds.
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: u64,
    pub disposition: Disposition,
    /// The final status sent to the caller (200 for answered calls).
    pub status: u16,
    /// Who ended an answered call: `caller`, `callee`, or `server` (timeout, shutdown, admin).
    pub hangup: Option<String>,
    /// The contact that answered.
    pub answered_by: Option<String>,
    /// What the relay saw of each phone's media (zero when the call had no anchored media).
    pub caller_media: LegMedia,
    pub callee_media: LegMedia,
}

/// One phone's media in a call, as the relay saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegMedia {
    /// The codec its last SDP put first (of the first audio stream).
    pub codec: Option<String>,
    /// RTP packets and bytes it sent to the relay.
    pub packets: u64,
    pub bytes: u64,
    /// What it reported in RTCP about the media it received: fraction lost (per mille) and
    /// interarrival jitter (µs).
    pub loss_permille: Option<u32>,
    pub jitter_us: Option<u32>,
}

impl CallRecord {
    /// Seconds of conversation (0 for a call that was never answered).
    pub fn duration_secs(&self) -> u64 {
        self.answered_ms
            .map_or(0, |a| self.ended_ms.saturating_sub(a).div_ceil(1000))
    }
}

/// Where call records go. Implementations are safe to share between threads.
pub trait RecordStore: Send + Sync {
    fn insert(&self, records: &[CallRecord]) -> Result<(), StoreError>;
    /// Records that ended in `[since_ms, until_ms)`, oldest first, at most `limit`.
    fn list_records(&self, since_ms: u64, until_ms: u64, limit: usize) -> Result<Vec<CallRecord>, StoreError>;
    /// Records that ended in `[since_ms, until_ms)`, newest first (by end time, then by the
    /// order they were stored), strictly after `after` in that order, at most `limit`; each with
    /// its [`RecordKey`], the `after` of the next page. Records stored while a client pages end
    /// later than the page it holds (or at the same millisecond, stored later), so they sort
    /// before its cursor: pages neither repeat nor skip a record.
    fn page_records(
        &self,
        since_ms: u64,
        until_ms: u64,
        after: Option<RecordKey>,
        limit: usize,
    ) -> Result<Vec<(RecordKey, CallRecord)>, StoreError>;
}

impl<T: RecordStore + ?Sized> RecordStore for std::sync::Arc<T> {
    fn insert(&self, records: &[CallRecord]) -> Result<(), StoreError> {
        (**self).insert(records)
    }
    fn list_records(&self, since_ms: u64, until_ms: u64, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        (**self).list_records(since_ms, until_ms, limit)
    }
    fn page_records(
        &self,
        since_ms: u64,
        until_ms: u64,
        after: Option<RecordKey>,
        limit: usize,
    ) -> Result<Vec<(RecordKey, CallRecord)>, StoreError> {
        (**self).page_records(since_ms, until_ms, after, limit)
    }
}

/// Where a record sits in the newest-first order of [`RecordStore::page_records`]: its end time
/// and its storage sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    pub ended_ms: u64,
    pub seq: i64,
}

/// Writes records on a thread of its own, batching what queues up.
pub struct RecordWriter {
    tx: Option<mpsc::Sender<CallRecord>>,
    thread: Option<JoinHandle<()>>,
}

impl RecordWriter {
    pub fn start(store: impl RecordStore + 'static) -> RecordWriter {
        let (tx, rx) = mpsc::channel::<CallRecord>();
        let thread = std::thread::Builder::new()
            .name("call-records".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter().take(4095));
                    if let Err(e) = store.insert(&batch) {
                        tracing::error!(error = %e, records = batch.len(), "call records not stored");
                    }
                }
            })
            .ok();
        RecordWriter { tx: Some(tx), thread }
    }

    pub fn submit(&self, record: CallRecord) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(record);
        }
    }

    /// Writes what is queued, then stops.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        self.finish();
    }
}
