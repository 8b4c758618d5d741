//! The synchronous heart of the server: the transaction layer and the dispatcher behind one lock.
//!
//! Transports parse and stamp messages outside the lock, then hand them in here; the engine
//! returns the transmissions to make. A timer task calls [`Engine::on_timeout`] at
//! [`Engine::next_deadline`]. No I/O happens under the lock.

use std::time::Instant;

use sip::Message;
use sip_txn::{Peer, TimerConfig, TransactionLayer, Transmit};

use crate::dispatch::{Dispatcher, PendingWrite};
use crate::registrar::Registrar;

pub struct Engine {
    txn: TransactionLayer,
    dispatcher: Dispatcher,
    accepting: bool,
}

impl Engine {
    pub fn new(
        timers: TimerConfig,
        registrar: Option<Registrar<crate::Subscribers>>,
        proxy: Option<crate::proxy::Proxy>,
    ) -> Self {
        Engine {
            txn: TransactionLayer::new(timers),
            dispatcher: Dispatcher::new(registrar, proxy),
            accepting: true,
        }
    }

    /// A checked message from the network.
    pub fn on_message(&mut self, now: Instant, message: Message, from: Peer, out: &mut Vec<Transmit>) {
        if !self.accepting && message.is_request() && message.method() != Some(&sip::Method::Ack) {
            // Shutting down: retransmissions, ACKs and CANCELs of transactions in flight still
            // reach the layer; new requests are dropped, so their senders time out and fail
            // over to another server.
            if !self.txn.matches_server_transaction(&message) {
                return;
            }
        }
        self.txn.handle_message(now, message, from);
        self.drain(now, out);
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.txn.handle_timeout(now);
        self.drain(now, out);
        self.dispatcher.on_timeout(now, &mut self.txn);
        self.drain(now, out);
    }

    pub fn on_transport_error(&mut self, now: Instant, tx: sip_txn::TxId, out: &mut Vec<Transmit>) {
        self.txn.transport_error(now, tx);
        self.drain(now, out);
    }

    /// Writes the dispatcher has queued for the group committer.
    pub fn take_pending(&mut self) -> Vec<PendingWrite> {
        std::mem::take(&mut self.dispatcher.pending)
    }

    /// Password guesses refused since the last call, for the brute-force defence.
    pub fn take_auth_refusals(&mut self) -> Vec<crate::dispatch::AuthRefusal> {
        std::mem::take(&mut self.dispatcher.refusals)
    }

    /// Sends a response that waited for a durable write.
    pub fn respond(&mut self, now: Instant, tx: sip_txn::TxId, response: Message, out: &mut Vec<Transmit>) {
        self.dispatcher.respond(now, &mut self.txn, tx, response);
        self.drain(now, out);
    }

    /// Drops expired registrations from memory.
    pub fn sweep(&mut self) -> usize {
        self.dispatcher.sweep()
    }

    pub fn next_deadline(&mut self) -> Option<Instant> {
        match (self.txn.poll_timeout(), self.dispatcher.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends a call from the server's side: BYE to both parties (or CANCEL while it rings).
    pub fn hang_up(&mut self, now: Instant, call_id: &str, why: &str, out: &mut Vec<Transmit>) -> bool {
        let found = self.dispatcher.hang_up(now, &mut self.txn, call_id, why);
        self.drain(now, out);
        found
    }

    /// Ends the calls whose media stopped.
    pub fn check_media(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.dispatcher.check_media(now, &mut self.txn);
        self.drain(now, out);
    }

    /// Records of calls that ended, for the record writer.
    pub fn take_records(&mut self) -> Vec<store::CallRecord> {
        self.dispatcher.take_records()
    }

    /// The proxy's calls in progress.
    pub fn active_calls(&self) -> usize {
        self.dispatcher.proxy.as_ref().map_or(0, |p| p.calls().count())
    }

    /// The location service, when the server has a registrar.
    pub fn location(&self) -> Option<&crate::registrar::Location> {
        self.dispatcher.registrar.as_ref().map(|r| &r.location)
    }

    pub fn location_mut(&mut self) -> Option<&mut crate::registrar::Location> {
        self.dispatcher.registrar.as_mut().map(|r| &mut r.location)
    }

    pub fn proxy(&self) -> Option<&crate::proxy::Proxy> {
        self.dispatcher.proxy.as_ref()
    }

    /// The store generation the subscriber cache holds.
    pub fn subscriber_generation(&self) -> Option<u64> {
        self.dispatcher
            .registrar
            .as_ref()
            .and_then(|r| r.subscribers.generation())
    }

    /// Replaces the subscriber cache with every subscriber of the domain, read at `generation`
    /// off the engine lock (a remote subscriber store, see `store::SubscriberCache::load_all`).
    pub fn load_subscribers(&mut self, generation: u64, all: Vec<store::Subscriber>) {
        if let Some(r) = self.dispatcher.registrar.as_mut() {
            r.subscribers.load_all(generation, all);
        }
    }

    /// Whether the table of live nodes has `node` (true without a cluster).
    pub fn knows_cluster_node(&mut self, node: &str) -> bool {
        self.dispatcher
            .proxy
            .as_mut()
            .and_then(|p| p.cluster_mut())
            .is_none_or(|view| view.knows(node))
    }

    /// The live nodes of the platform, for routing to phones other nodes hold.
    pub fn set_cluster_nodes(&mut self, nodes: std::collections::HashMap<String, std::net::SocketAddr>) {
        if let Some(view) = self.dispatcher.proxy.as_mut().and_then(|p| p.cluster_mut()) {
            view.set_nodes(nodes);
        }
    }

    /// Digest credentials refused since start (registrar and proxy).
    pub fn auth_failures(&self) -> u64 {
        self.dispatcher.registrar.as_ref().map_or(0, |r| r.auth_failures)
    }

    /// Stop taking new requests (graceful shutdown).
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Transactions that still wait for something other than their final timer.
    pub fn in_flight(&self) -> usize {
        self.txn.client_transactions() + self.txn.pending_server_transactions()
    }

    pub fn transactions(&self) -> usize {
        self.txn.len()
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        while let Some(event) = self.txn.poll_event() {
            self.dispatcher.on_event(now, &mut self.txn, event);
        }
        while let Some(t) = self.txn.poll_transmit() {
            out.push(t);
        }
    }
}
