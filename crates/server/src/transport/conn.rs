//! The connection table: every open TCP/TLS connection by id and by remote address, so that a
//! response or a later request to a phone goes over the connection the phone opened (RFC 3261
//! §18.2.2, RFC 5626 flows), and a cap on connections per source address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use sip_txn::Transport;
use tokio::sync::mpsc;

/// Outgoing messages queued per connection before it counts as stuck.
pub const QUEUE: usize = 256;

struct Entry {
    remote: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<u64, Entry>,
    by_remote: HashMap<(SocketAddr, Transport), u64>,
    per_ip: HashMap<IpAddr, usize>,
}

pub struct ConnTable {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    max_per_ip: usize,
}

/// Removes its connection from the table when dropped.
pub struct Registration<'a> {
    table: &'a ConnTable,
    pub id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

impl ConnTable {
    pub fn new(max_per_ip: usize) -> Self {
        // UDP uses small ids (socket indexes); connection ids start far above them.
        ConnTable {
            inner: Mutex::new(Inner::default()),
            next_id: AtomicU64::new(1 << 32),
            max_per_ip,
        }
    }

    /// Registers a new connection; `None` when its source already has the maximum.
    pub fn add(&self, remote: SocketAddr, transport: Transport, tx: mpsc::Sender<Bytes>) -> Option<Registration<'_>> {
        let mut inner = self.inner.lock();
        let count = inner.per_ip.entry(remote.ip()).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        inner.by_remote.insert((remote, transport), id);
        inner.by_id.insert(id, Entry { remote, transport, tx });
        Some(Registration { table: self, id })
    }

    fn remove(&self, id: u64) {
        let mut inner = self.inner.lock();
        if let Some(e) = inner.by_id.remove(&id) {
            if inner.by_remote.get(&(e.remote, e.transport)) == Some(&id) {
                inner.by_remote.remove(&(e.remote, e.transport));
            }
            if let Some(c) = inner.per_ip.get_mut(&e.remote.ip()) {
                *c -= 1;
                if *c == 0 {
                    inner.per_ip.remove(&e.remote.ip());
                }
            }
        }
    }

    /// Queues bytes on a connection; false when it is gone or stuck.
    pub fn send(&self, id: u64, bytes: Bytes) -> bool {
        let tx = match self.inner.lock().by_id.get(&id) {
            Some(e) => e.tx.clone(),
            None => return false,
        };
        tx.try_send(bytes).is_ok()
    }

    /// The open connection to `remote`, for reaching a phone over the connection it opened.
    pub fn find(&self, remote: SocketAddr, transport: Transport) -> Option<u64> {
        self.inner.lock().by_remote.get(&(remote, transport)).copied()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_per_source_and_cleanup() {
        let table = ConnTable::new(2);
        let a: SocketAddr = "192.0.2.1:1000".parse().expect("addr");
        let b: SocketAddr = "192.0.2.1:1001".parse().expect("addr");
        let c: SocketAddr = "192.0.2.1:1002".parse().expect("addr");
        let (tx, mut rx) = mpsc::channel(4);
        let ra = table.add(a, Transport::Tcp, tx.clone()).expect("first");
        let rb = table.add(b, Transport::Tls, tx.clone()).expect("second");
        assert!(
            table.add(c, Transport::Tcp, tx.clone()).is_none(),
            "third from the same IP refused"
        );
        assert_eq!(table.find(b, Transport::Tls), Some(rb.id));
        assert!(table.send(ra.id, Bytes::from_static(b"x")));
        assert_eq!(rx.try_recv().ok(), Some(Bytes::from_static(b"x")));
        let id = ra.id;
        drop(ra);
        assert!(!table.send(id, Bytes::from_static(b"y")));
        assert!(table.add(c, Transport::Tcp, tx).is_some(), "room again after a close");
        drop(rb);
    }
}
