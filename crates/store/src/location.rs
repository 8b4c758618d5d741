//! Location bindings (RFC 3261 §10.3): for each address-of-record, the contacts registered for it
//! with their expiry, q-value, Call-ID/CSeq and the network path the REGISTER came in on (so that
//! later requests reach a phone behind NAT over that path).
//!
//! Writes go through a [`GroupCommitter`]: REGISTERs that arrive within about a millisecond are
//! written in one transaction with one fsync, and each caller learns when its binding is on disk.
//! A registrar sends its 200 only then, so no acknowledged binding is lost to a crash, and the
//! cost of an fsync (about 270 µs here) is shared by every REGISTER of the batch.

use std::fmt;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::subscribers::StoreError;

/// One registered contact of an address-of-record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The address-of-record, `user@domain`.
    pub aor: String,
    /// The Contact URI exactly as registered.
    pub contact: String,
    /// Unix time (seconds) at which the binding expires.
    pub expires_at: u64,
    /// q-value in thousandths (1000 when absent).
    pub q: u16,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from: `udp:198.51.100.7:5060`, `tcp:...`, `tls:...`.
    pub source: String,
    /// The connection it came in on (0 for UDP), valid while that connection lives.
    pub conn: u64,
    pub user_agent: Option<String>,
    /// The phone is behind NAT (its Via or Contact names an address other than the one its
    /// packets came from): requests to it go to `source`, not to the Contact address.
    pub behind_nat: bool,
    /// The cluster node that holds the phone's flow (its `--node-id`): requests to the phone go
    /// through that node, which owns the NAT mapping or the connection. Empty on a single node.
    pub node: String,
}

/// Where bindings live. Implementations are safe to share between threads.
pub trait LocationStore: Send + Sync {
    /// Replaces every binding of `aor` with `bindings` (empty removes the AOR).
    fn replace(&self, aor: &str, bindings: &[Binding]) -> Result<(), StoreError>;
    /// Every binding that has not expired at `now`.
    fn load(&self, now: u64) -> Result<Vec<Binding>, StoreError>;
    /// Deletes bindings expired at `now`; returns how many. (A store that expires keys by
    /// itself, like Redis, has nothing to do.)
    fn purge_expired(&self, now: u64) -> Result<usize, StoreError>;
    /// A writer on a connection of its own, for a [`GroupCommitter`] thread.
    fn batch_writer(&self) -> Result<Box<dyn BatchWriter>, StoreError>;
}

impl<T: LocationStore + ?Sized> LocationStore for std::sync::Arc<T> {
    fn replace(&self, aor: &str, bindings: &[Binding]) -> Result<(), StoreError> {
        (**self).replace(aor, bindings)
    }
    fn load(&self, now: u64) -> Result<Vec<Binding>, StoreError> {
        (**self).load(now)
    }
    fn purge_expired(&self, now: u64) -> Result<usize, StoreError> {
        (**self).purge_expired(now)
    }
    fn batch_writer(&self) -> Result<Box<dyn BatchWriter>, StoreError> {
        (**self).batch_writer()
    }
}

/// One AOR's new binding set, and whom to tell once it is durable.
pub struct Write {
    pub aor: String,
    pub bindings: Vec<Binding>,
    pub done: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

impl fmt::Debug for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Write")
            .field("aor", &self.aor)
            .field("bindings", &self.bindings.len())
            .finish()
    }
}

/// Something that can write several AORs in one durable transaction.
pub trait BatchWriter: Send + 'static {
    fn write_batch(&mut self, batch: &[(String, Vec<Binding>)]) -> Result<(), StoreError>;
}

impl BatchWriter for Box<dyn BatchWriter> {
    fn write_batch(&mut self, batch: &[(String, Vec<Binding>)]) -> Result<(), StoreError> {
        (**self).write_batch(batch)
    }
}

/// Batches writes: a dedicated thread takes everything queued (waiting at most `window` for more
/// after the first), writes it in one transaction, then completes every write of the batch.
pub struct GroupCommitter {
    tx: Option<mpsc::Sender<Write>>,
    thread: Option<JoinHandle<u64>>,
}

impl GroupCommitter {
    /// `max_batch` bounds the work of one transaction.
    pub fn start(mut writer: impl BatchWriter, window: Duration, max_batch: usize) -> GroupCommitter {
        let (tx, rx) = mpsc::channel::<Write>();
        let thread = std::thread::Builder::new()
            .name("location-commit".into())
            .spawn(move || {
                let mut commits = 0u64;
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    let deadline = std::time::Instant::now() + window;
                    while batch.len() < max_batch {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(w) => batch.push(w),
                            Err(_) => break,
                        }
                    }
                    let rows: Vec<(String, Vec<Binding>)> = batch
                        .iter_mut()
                        .map(|w| (w.aor.clone(), std::mem::take(&mut w.bindings)))
                        .collect();
                    let result = writer.write_batch(&rows);
                    commits += 1;
                    for w in batch {
                        (w.done)(result.clone());
                    }
                }
                commits
            })
            .ok();
        GroupCommitter { tx: Some(tx), thread }
    }

    /// Queues a write; `done` runs on the commit thread once it is durable (or failed).
    pub fn submit(&self, write: Write) {
        let Some(tx) = &self.tx else {
            (write.done)(Err(StoreError::Backend("the committer is stopped".into())));
            return;
        };
        if let Err(mpsc::SendError(w)) = tx.send(write) {
            (w.done)(Err(StoreError::Backend("the commit thread is gone".into())));
        }
    }

    /// Finishes the queued writes and stops; returns how many transactions were committed.
    pub fn stop(mut self) -> u64 {
        self.tx.take();
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
