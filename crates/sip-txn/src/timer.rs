//! The timer queue: a binary heap of (deadline, transaction, timer) with lazy invalidation. A
//! transaction remembers the deadline of each of its armed timers; a popped entry that no longer
//! matches (re-armed, stopped, or the transaction is gone) is skipped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::TxId;

/// The timers of RFC 3261 §17 and RFC 6026, plus the 100 Trying delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    A,
    B,
    D,
    E,
    F,
    K,
    M,
    G,
    H,
    I,
    J,
    L,
    Trying,
}

impl TimerKind {
    pub const COUNT: usize = 13;

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Per-transaction armed deadlines.
#[derive(Debug, Default, Clone)]
pub struct Armed([Option<Instant>; TimerKind::COUNT]);

impl Armed {
    pub fn get(&self, k: TimerKind) -> Option<Instant> {
        self.0[k.index()]
    }

    pub fn set(&mut self, k: TimerKind, at: Option<Instant>) {
        self.0[k.index()] = at;
    }
}

#[derive(Debug)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, TxId, TimerKind)>>,
}

/// Entries reserved up front: address space only (pages are touched as the heap fills), so the
/// heap does not reallocate and copy itself in the middle of a load peak below ~2 million
/// pending timers.
const RESERVED: usize = 1 << 21;

impl Default for TimerQueue {
    fn default() -> Self {
        TimerQueue {
            heap: BinaryHeap::with_capacity(RESERVED),
        }
    }
}

impl TimerQueue {
    pub fn push(&mut self, at: Instant, tx: TxId, kind: TimerKind) {
        self.heap.push(Reverse((at, tx, kind)));
    }

    /// The earliest entry, stale or not.
    pub fn peek(&self) -> Option<(Instant, TxId, TimerKind)> {
        self.heap.peek().map(|Reverse(e)| *e)
    }

    /// Pops the earliest entry due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TxId, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Drops stale entries at the top so `peek` is accurate.
    pub fn prune(&mut self, live: impl Fn(TxId, TimerKind, Instant) -> bool) {
        while let Some(Reverse((at, tx, kind))) = self.heap.peek() {
            if live(*tx, *kind, *at) {
                break;
            }
            self.heap.pop();
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
