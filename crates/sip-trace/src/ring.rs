//! [`TraceRing`]: the bounded ring of recent messages with its Call-ID index.
//!
//! The messages of one Call-ID form a singly linked list through the ring (`Entry::next_in_call`,
//! by sequence number), and the index maps a Call-ID to the first and last of them. Sequence
//! numbers are consecutive, so `seq - base` is a message's position in the ring: following a link
//! or finding the previous message of a call is an array access. Eviction always takes the oldest
//! message, which is the first of its call, so unlinking it is O(1) too.
//!
//! An index key is a slice of the payload of its call's first message in the ring (no copy); when
//! that message is evicted and the call goes on, the key moves to the next message, so an evicted
//! payload is never kept alive by the index.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::hep3::HepSender;
use crate::summary::{Compact, Span, scan, text};
use crate::{Direction, Proto, TracedMessage};

/// No next message in the call.
const NONE: u64 = u64::MAX;

/// One dialog (or registration, or out-of-dialog request) of the trace: the messages of one
/// Call-ID that are still in the ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSummary {
    pub call_id: String,
    pub first_at_us: u64,
    pub last_at_us: u64,
    /// Messages of this Call-ID in the ring.
    pub messages: usize,
    /// The method of the first request still in the ring (`REGISTER`, `INVITE`, ...); `""` when
    /// only responses are left.
    pub method: String,
    /// From and To users of the first message still in the ring.
    pub from_user: Option<String>,
    pub to_user: Option<String>,
}

/// The last `capacity` SIP messages the server received and sent, grouped by Call-ID; optionally
/// also sent to a Homer collector as HEP3. `capacity == 0` keeps nothing (the off switch).
///
/// Shared by every transport thread: [`TraceRing::record`] holds the lock only to push a
/// prepared entry and fix the index; readers copy what they need under the lock (refcounted
/// payloads) and build strings after releasing it.
pub struct TraceRing {
    capacity: usize,
    inner: Mutex<Inner>,
    hep: Option<HepSender>,
}

struct Inner {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]` (the next one when empty).
    base: u64,
    calls: HashMap<Bytes, Link>,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    first: u64,
    last: u64,
    count: usize,
}

#[derive(Clone)]
struct Entry {
    at_us: u64,
    next_in_call: u64,
    payload: Bytes,
    local: SocketAddr,
    remote: SocketAddr,
    summary: Compact,
    direction: Direction,
    proto: Proto,
    last_in_call: bool,
}

impl Entry {
    fn call_id(&self) -> Option<&[u8]> {
        self.summary.call_id.get(&self.payload)
    }

    fn into_message(self, seq: u64) -> TracedMessage {
        TracedMessage {
            seq,
            at_us: self.at_us,
            direction: self.direction,
            proto: self.proto,
            local: self.local,
            remote: self.remote,
            summary: self.summary.materialize(&self.payload),
            payload: self.payload,
        }
    }
}

impl Inner {
    fn get(&self, seq: u64) -> Option<&Entry> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.entries.get(i)
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.entries.get_mut(i)
    }

    fn push(&mut self, mut entry: Entry, capacity: usize) -> u64 {
        if self.entries.len() >= capacity {
            self.evict_oldest();
        }
        let seq = self.base + self.entries.len() as u64;
        if let Some(range) = entry.summary.call_id.range() {
            entry.last_in_call = true;
            let previous = match self.calls.get_mut(&entry.payload[range.clone()]) {
                Some(link) => {
                    let previous = link.last;
                    link.last = seq;
                    link.count += 1;
                    Some(previous)
                }
                None => {
                    let link = Link {
                        first: seq,
                        last: seq,
                        count: 1,
                    };
                    self.calls.insert(entry.payload.slice(range), link);
                    None
                }
            };
            if let Some(prev) = previous.and_then(|p| self.get_mut(p)) {
                prev.next_in_call = seq;
                prev.last_in_call = false;
            }
        }
        self.entries.push_back(entry);
        seq
    }

    fn evict_oldest(&mut self) {
        let Some(old) = self.entries.pop_front() else {
            return;
        };
        self.base += 1;
        let Some(call_id) = old.call_id() else {
            return;
        };
        let Some(link) = self.calls.get_mut(call_id) else {
            debug_assert!(false, "evicted message missing from the index");
            return;
        };
        link.count -= 1;
        if link.count == 0 {
            self.calls.remove(call_id);
            return;
        }
        link.first = old.next_in_call;
        let link = *link;
        // The key is a slice of the evicted payload: move it to the call's new first message.
        let next_key = self
            .get(link.first)
            .and_then(|e| e.summary.call_id.range().map(|r| e.payload.slice(r)));
        self.calls.remove(call_id);
        if let Some(key) = next_key {
            self.calls.insert(key, link);
        }
    }

    /// The first request of a call and its first message.
    fn call_summary_parts(&self, key: &Bytes, link: &Link, last: &Entry) -> RawCall {
        let first = self.get(link.first);
        let mut method = None;
        let mut seq = link.first;
        while let Some(e) = self.get(seq) {
            if e.summary.method.range().is_some() {
                method = Some((e.payload.clone(), e.summary.method));
                break;
            }
            seq = e.next_in_call;
        }
        RawCall {
            call_id: key.clone(),
            first_at_us: first.map_or(last.at_us, |f| f.at_us),
            last_at_us: last.at_us,
            messages: link.count,
            method,
            parties: first.map(|f| (f.payload.clone(), f.summary.from_user, f.summary.to_user)),
        }
    }
}

/// What a [`CallSummary`] is built from, copied under the lock.
struct RawCall {
    call_id: Bytes,
    first_at_us: u64,
    last_at_us: u64,
    messages: usize,
    method: Option<(Bytes, Span)>,
    parties: Option<(Bytes, Span, Span)>,
}

impl RawCall {
    fn materialize(self) -> CallSummary {
        let (from_user, to_user) = match &self.parties {
            Some((p, f, t)) => (text(*f, p), text(*t, p)),
            None => (None, None),
        };
        CallSummary {
            call_id: String::from_utf8_lossy(&self.call_id).into_owned(),
            first_at_us: self.first_at_us,
            last_at_us: self.last_at_us,
            messages: self.messages,
            method: self.method.and_then(|(p, m)| text(m, &p)).unwrap_or_default(),
            from_user,
            to_user,
        }
    }
}

impl TraceRing {
    /// A ring of `capacity` messages; 0 keeps nothing. The ring's slots are reserved up front
    /// (address space only: pages are touched as messages arrive) so that recording never
    /// reallocates under the lock.
    pub fn new(capacity: usize) -> Self {
        TraceRing {
            capacity,
            inner: Mutex::new(Inner {
                entries: VecDeque::with_capacity(capacity),
                base: 1,
                calls: HashMap::with_capacity(capacity),
            }),
            hep: None,
        }
    }

    /// Also sends every recorded message to a Homer collector (even with capacity 0).
    pub fn with_hep(mut self, sender: HepSender) -> Self {
        self.hep = Some(sender);
        self
    }

    /// The HEP sender, for its counters.
    pub fn hep(&self) -> Option<&HepSender> {
        self.hep.as_ref()
    }

    /// Whether [`TraceRing::record`] does anything at all.
    pub fn is_enabled(&self) -> bool {
        self.capacity > 0 || self.hep.is_some()
    }

    /// Records one message received (`In`) or sent (`Out`) by the server. `payload` should own
    /// just the message (the ring keeps it alive until evicted). Summarizing happens before the
    /// lock is taken; under it: one push, maybe one eviction, one or two index look-ups.
    pub fn record(
        &self,
        at_us: u64,
        direction: Direction,
        proto: Proto,
        local: SocketAddr,
        remote: SocketAddr,
        payload: Bytes,
    ) {
        if self.capacity > 0 {
            let entry = Entry {
                at_us,
                next_in_call: NONE,
                summary: scan(&payload),
                payload: payload.clone(),
                local,
                remote,
                direction,
                proto,
                last_in_call: false,
            };
            self.inner.lock().push(entry, self.capacity);
        }
        if let Some(hep) = &self.hep {
            hep.send_parts(at_us, direction, proto, local, remote, &payload);
        }
    }

    /// All messages of one Call-ID still in the ring, oldest first.
    pub fn call(&self, call_id: &str) -> Vec<TracedMessage> {
        let picked = {
            let inner = self.inner.lock();
            let Some(link) = inner.calls.get(call_id.as_bytes()) else {
                return Vec::new();
            };
            let mut picked = Vec::with_capacity(link.count);
            let mut seq = link.first;
            while let Some(e) = inner.get(seq) {
                picked.push((seq, e.clone()));
                seq = e.next_in_call;
            }
            picked
        };
        picked.into_iter().map(|(seq, e)| e.into_message(seq)).collect()
    }

    /// Calls whose From or To user is `user` (ASCII case-insensitive, whole user part), the most
    /// recently active first. Walks the ring from the newest message: O(messages) at worst.
    pub fn search_user(&self, user: &str, limit: usize) -> Vec<CallSummary> {
        let user = user.as_bytes();
        let matches = |e: &Entry| {
            [e.summary.from_user, e.summary.to_user]
                .iter()
                .any(|s| s.get(&e.payload).is_some_and(|u| u.eq_ignore_ascii_case(user)))
        };
        self.calls_newest_first(limit, matches)
    }

    /// The most recently active calls first.
    pub fn recent(&self, limit: usize) -> Vec<CallSummary> {
        self.calls_newest_first(limit, |_| true)
    }

    fn calls_newest_first(&self, limit: usize, filter: impl Fn(&Entry) -> bool) -> Vec<CallSummary> {
        if limit == 0 {
            return Vec::new();
        }
        let raw = {
            let inner = self.inner.lock();
            let mut raw = Vec::new();
            // The last message of each call carries a flag: walking back from the newest meets
            // each call once, in order of last activity.
            for e in inner.entries.iter().rev().filter(|e| e.last_in_call && filter(e)) {
                let Some((key, link)) = e.call_id().and_then(|id| inner.calls.get_key_value(id)) else {
                    continue;
                };
                raw.push(inner.call_summary_parts(key, link, e));
                if raw.len() == limit {
                    break;
                }
            }
            raw
        };
        raw.into_iter().map(RawCall::materialize).collect()
    }

    /// Up to `limit` messages with a sequence number above `after_seq`, oldest first (0: from the
    /// oldest). For following the trace live.
    pub fn since(&self, after_seq: u64, limit: usize) -> Vec<TracedMessage> {
        let picked: Vec<(u64, Entry)> = {
            let inner = self.inner.lock();
            let skip = usize::try_from((after_seq + 1).saturating_sub(inner.base)).unwrap_or(usize::MAX);
            let base = inner.base;
            (inner.entries.iter().enumerate().skip(skip).take(limit))
                .map(|(i, e)| (base + i as u64, e.clone()))
                .collect()
        };
        picked.into_iter().map(|(seq, e)| e.into_message(seq)).collect()
    }

    /// Every message in the ring, oldest first (for a pcap of everything).
    pub fn snapshot(&self) -> Vec<TracedMessage> {
        self.since(0, usize::MAX)
    }

    /// Messages in the ring.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Distinct Call-IDs in the ring.
    pub fn calls(&self) -> usize {
        self.inner.lock().calls.len()
    }

    /// Messages recorded since start (evicted ones included).
    pub fn recorded(&self) -> u64 {
        let inner = self.inner.lock();
        inner.base - 1 + inner.entries.len() as u64
    }

    /// Checks the index against the ring; panics on any inconsistency. For tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let inner = self.inner.lock();
        assert!(inner.entries.len() <= self.capacity);
        let mut seen: HashMap<&[u8], (u64, u64, usize)> = HashMap::new();
        for (i, e) in inner.entries.iter().enumerate() {
            let seq = inner.base + i as u64;
            let Some(id) = e.call_id() else {
                assert!(!e.last_in_call && e.next_in_call == NONE);
                continue;
            };
            let s = seen.entry(id).or_insert((seq, seq, 0));
            s.1 = seq;
            s.2 += 1;
            assert_eq!(e.last_in_call, e.next_in_call == NONE, "seq {seq}");
            if e.next_in_call != NONE {
                let next = inner.get(e.next_in_call).expect("link inside the ring");
                assert!(e.next_in_call > seq);
                assert_eq!(next.call_id(), Some(id));
                // No message of the same call in between.
                for j in seq + 1..e.next_in_call {
                    assert_ne!(inner.get(j).and_then(Entry::call_id), Some(id));
                }
            }
        }
        assert_eq!(seen.len(), inner.calls.len());
        for (key, link) in &inner.calls {
            let &(first, last, count) = seen.get(&key[..]).expect("indexed call in the ring");
            assert_eq!((link.first, link.last, link.count), (first, last, count));
            // The key lives in the payload of the call's first message.
            let f = inner.get(first).expect("first");
            let range = f.payload.as_ptr_range();
            assert!(range.contains(&key.as_ptr()), "key not in the first payload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        // The per-message cost documented in the crate comment.
        assert_eq!(std::mem::size_of::<Entry>(), 144);
        assert_eq!(std::mem::size_of::<(Bytes, Link)>(), 56);
    }

    #[test]
    fn send_sync() {
        fn check<T: Send + Sync>() {}
        check::<TraceRing>();
    }
}
