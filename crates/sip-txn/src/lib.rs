//! # sip-txn — SIP transactions, sans-IO
//!
//! The transaction layer of RFC 3261 §17 with the RFC 6026 corrections (the Accepted states and
//! Timers L and M). It owns no socket and reads no clock: the caller feeds it received messages
//! ([`TransactionLayer::handle_message`]), the TU's responses and requests, and the current time;
//! it hands back messages to transmit ([`TransactionLayer::poll_transmit`]), events for the TU
//! ([`TransactionLayer::poll_event`]), and the next instant it needs to be woken
//! ([`TransactionLayer::poll_timeout`]). So every timer path is tested on a virtual clock, and
//! the same core serves the proxy, the registrar and (later) the server's own user-agent legs.
//!
//! Written by hand: it is the core of the product, and the shape (quinn-proto / str0m style) is
//! what makes it testable; no maintained Rust crate offers a sans-IO SIP transaction layer.
//!
//! Files: `server.rs` and `client.rs` hold the state machines, `key.rs` the matching rules
//! (§17.1.3, §17.2.3, RFC 2543 fallback, CANCEL §9.2), `timer.rs` the timer queue, `ack.rs` the
//! ACK for non-2xx finals, `config.rs` T1/T2/T4.

mod ack;
mod client;
mod config;
mod key;
mod server;
mod shard;
mod timer;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use sip::{Message, Method, ParseError};

use client::ClientTx;
pub use config::TimerConfig;
use key::{ClientKey, ServerKey};
use server::ServerTx;
use shard::ShardedMap;
use timer::{Armed, TimerKind, TimerQueue};

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Reliable transports need no retransmissions and no lingering states (§17).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via transport token.
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }
}

/// Where a message came from or goes to. `conn` is an opaque transport handle (a UDP socket
/// index, a TCP/TLS connection id) the caller interprets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: u64,
}

/// A transaction handle; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// A message for the caller to serialize and send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub tx: Option<TxId>,
    pub to: Peer,
    pub message: Message,
}

/// What the transaction user must know.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new request created a server transaction (never for ACK). Answer with `respond`.
    Request { tx: TxId, request: Message, from: Peer },
    /// A CANCEL created its own server transaction; `invite` is the INVITE server transaction it
    /// cancels, if one matches (§9.2).
    Cancel {
        tx: TxId,
        invite: Option<TxId>,
        request: Message,
        from: Peer,
    },
    /// An ACK for a 2xx: it matched no transaction, or an INVITE server transaction in Accepted.
    Ack {
        request: Message,
        from: Peer,
        invite: Option<TxId>,
    },
    /// A response for a client transaction (every 2xx while Accepted).
    Response { tx: TxId, response: Message },
    /// A response that matched no client transaction (§16.7: a proxy forwards it statelessly).
    StrayResponse { response: Message, from: Peer },
    /// Timer B or F (no final response: act as on 408), or H (the ACK never came).
    Timeout { tx: TxId },
    /// The transport could not send for this transaction.
    TransportError { tx: TxId },
    /// The transaction is gone.
    Terminated { tx: TxId },
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnError {
    UnknownTransaction,
    NotAResponse,
    NotARequest,
    /// ACK is never a client transaction: the layer sends the non-2xx ACK itself and a 2xx ACK
    /// goes through `send_stateless`.
    AckIsNotATransaction,
    /// A request we send must carry a top Via with an RFC 3261 branch.
    MissingBranch,
    /// A client transaction with that branch and method already exists.
    DuplicateBranch,
    InvalidState(&'static str),
    BadMessage(ParseError),
}

impl fmt::Display for TxnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnError::UnknownTransaction => f.write_str("no such transaction"),
            TxnError::NotAResponse => f.write_str("not a response"),
            TxnError::NotARequest => f.write_str("not a request"),
            TxnError::AckIsNotATransaction => f.write_str("ACK does not create a client transaction"),
            TxnError::MissingBranch => f.write_str("request has no RFC 3261 branch in its top Via"),
            TxnError::DuplicateBranch => f.write_str("a client transaction with this branch exists"),
            TxnError::InvalidState(s) => write!(f, "invalid state: {s}"),
            TxnError::BadMessage(e) => write!(f, "bad message: {e}"),
        }
    }
}

impl std::error::Error for TxnError {}

/// Outputs shared by the state machines.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub timers: TimerQueue,
    pub transmits: VecDeque<Transmit>,
    pub events: VecDeque<Event>,
}

impl Out {
    pub fn transmit(&mut self, tx: Option<TxId>, to: Peer, message: Message) {
        self.transmits.push_back(Transmit { tx, to, message });
    }

    pub fn arm(&mut self, armed: &mut Armed, tx: TxId, kind: TimerKind, at: Instant) {
        armed.set(kind, Some(at));
        self.timers.push(at, tx, kind);
    }

    pub fn disarm(&mut self, armed: &mut Armed, kind: TimerKind) {
        armed.set(kind, None);
    }
}

#[derive(Debug)]
enum Tx {
    // Boxed: map entries stay small, so growing a shard moves pointers, not transactions.
    Server(Box<ServerTx>),
    Client(Box<ClientTx>),
}

impl Tx {
    fn armed(&self) -> &Armed {
        match self {
            Tx::Server(s) => &s.armed,
            Tx::Client(c) => &c.armed,
        }
    }
}

/// All transactions of one element.
#[derive(Debug)]
pub struct TransactionLayer {
    config: TimerConfig,
    next_id: u64,
    txs: ShardedMap<TxId, Tx>,
    servers: ShardedMap<ServerKey, TxId>,
    clients: ShardedMap<ClientKey, TxId>,
    out: Out,
}

impl TransactionLayer {
    pub fn new(config: TimerConfig) -> Self {
        TransactionLayer {
            config,
            next_id: 1,
            txs: ShardedMap::default(),
            servers: ShardedMap::default(),
            clients: ShardedMap::default(),
            out: Out::default(),
        }
    }

    pub fn config(&self) -> &TimerConfig {
        &self.config
    }

    fn new_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    /// A message received from the network, already parsed and checked with
    /// `Message::check_essentials`.
    pub fn handle_message(&mut self, now: Instant, message: Message, from: Peer) {
        if message.is_request() {
            self.handle_request(now, message, from);
        } else {
            self.handle_response(now, message, from);
        }
    }

    fn handle_request(&mut self, now: Instant, req: Message, from: Peer) {
        let Ok(key) = ServerKey::of_request(&req, None) else {
            return;
        };
        let method = req.method().cloned();
        if let Some(&id) = self.servers.get(&key) {
            if let Some(Tx::Server(tx)) = self.txs.get_mut(&id) {
                tx.on_request(now, req, from, &self.config, &mut self.out);
            }
            return;
        }
        match method {
            Some(Method::Ack) => {
                self.out.events.push_back(Event::Ack {
                    request: req,
                    from,
                    invite: None,
                });
            }
            Some(method) => {
                // A CANCEL is its own transaction and also names the INVITE it cancels (§9.2).
                let cancels = (method == Method::Cancel).then(|| {
                    ServerKey::of_request(&req, Some(Method::Invite))
                        .ok()
                        .and_then(|k| self.servers.get(&k).copied())
                });
                let id = self.new_id();
                let tx = ServerTx::new(
                    id,
                    key.clone(),
                    req.clone(),
                    from.clone(),
                    now,
                    &self.config,
                    &mut self.out,
                );
                self.servers.insert(key, id);
                self.txs.insert(id, Tx::Server(Box::new(tx)));
                self.out.events.push_back(match cancels {
                    Some(invite) => Event::Cancel {
                        tx: id,
                        invite,
                        request: req,
                        from,
                    },
                    None => Event::Request {
                        tx: id,
                        request: req,
                        from,
                    },
                });
            }
            None => {}
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Message, from: Peer) {
        let id = ClientKey::of_response(&resp)
            .ok()
            .and_then(|k| self.clients.get(&k).copied());
        match id.and_then(|id| self.txs.get_mut(&id)) {
            Some(Tx::Client(tx)) => tx.on_response(now, resp, &self.config, &mut self.out),
            _ => self.out.events.push_back(Event::StrayResponse { response: resp, from }),
        }
    }

    /// Whether a request belongs to an existing server transaction (a retransmission, or the ACK
    /// or CANCEL of one).
    pub fn matches_server_transaction(&self, req: &Message) -> bool {
        let own = ServerKey::of_request(req, None)
            .ok()
            .is_some_and(|k| self.servers.contains_key(&k));
        own || (req.method() == Some(&Method::Cancel)
            && ServerKey::of_request(req, Some(Method::Invite))
                .ok()
                .is_some_and(|k| self.servers.contains_key(&k)))
    }

    /// The TU answers a server transaction.
    pub fn respond(&mut self, now: Instant, tx: TxId, response: Message) -> Result<(), TxnError> {
        match self.txs.get_mut(&tx) {
            Some(Tx::Server(s)) => s.respond(now, response, &self.config, &mut self.out),
            _ => Err(TxnError::UnknownTransaction),
        }
    }

    /// The TU answers a non-INVITE server transaction with a final response and keeps no state
    /// for it: RFC 3261 §8.2.7 stateless UAS behaviour, whose main use the RFC names as issuing
    /// unauthenticated challenges. The response is sent once and the transaction ends at once,
    /// so a retransmitted request is a new request and gets a new answer (a fresh challenge
    /// costs an HMAC, while remembering the answer costs a transaction for 64*T1 per REGISTER).
    /// An INVITE, a provisional response or a transaction already answered go to
    /// [`TransactionLayer::respond`].
    pub fn respond_stateless(&mut self, now: Instant, tx: TxId, response: Message) -> Result<(), TxnError> {
        let code = response.status_code().ok_or(TxnError::NotAResponse)?;
        let peer = match self.txs.get(&tx) {
            Some(Tx::Server(s)) if !s.invite && code >= 200 && s.awaiting_final() => s.peer.clone(),
            Some(Tx::Server(_)) => return self.respond(now, tx, response),
            _ => return Err(TxnError::UnknownTransaction),
        };
        self.out.transmit(Some(tx), peer, response);
        self.terminate(tx);
        Ok(())
    }

    /// The TU sends a request: a new client transaction. The request's top Via must carry an
    /// RFC 3261 branch. Never ACK (see [`TxnError::AckIsNotATransaction`]).
    pub fn send_request(&mut self, now: Instant, request: Message, to: Peer) -> Result<TxId, TxnError> {
        match request.method() {
            None => return Err(TxnError::NotARequest),
            Some(Method::Ack) => return Err(TxnError::AckIsNotATransaction),
            Some(_) => {}
        }
        let via = request.via().map_err(TxnError::BadMessage)?;
        if !via.has_rfc3261_branch() {
            return Err(TxnError::MissingBranch);
        }
        let key = ClientKey::of_request(&request).map_err(TxnError::BadMessage)?;
        if self.clients.contains_key(&key) {
            return Err(TxnError::DuplicateBranch);
        }
        let id = self.new_id();
        let tx = ClientTx::start(id, key.clone(), request, to, now, &self.config, &mut self.out);
        self.clients.insert(key, id);
        self.txs.insert(id, Tx::Client(Box::new(tx)));
        Ok(id)
    }

    /// Sends a message outside any transaction (ACK for 2xx, stateless forwarding).
    pub fn send_stateless(&mut self, message: Message, to: Peer) {
        self.out.transmit(None, to, message);
    }

    /// The transport failed to send for `tx` (§17.1.4, §17.2.4): the transaction ends.
    pub fn transport_error(&mut self, _now: Instant, tx: TxId) {
        if self.txs.contains_key(&tx) {
            self.out.events.push_back(Event::TransportError { tx });
            self.terminate(tx);
        }
    }

    fn terminate(&mut self, id: TxId) {
        match self.txs.remove(&id) {
            Some(Tx::Server(s)) => {
                if self.servers.get(&s.key) == Some(&id) {
                    self.servers.remove(&s.key);
                }
            }
            Some(Tx::Client(c)) => {
                if self.clients.get(&c.key) == Some(&id) {
                    self.clients.remove(&c.key);
                }
            }
            None => return,
        }
        self.out.events.push_back(Event::Terminated { tx: id });
    }

    /// Fires every timer due at `now`, in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, id, kind)) = self.out.timers.pop_due(now) {
            let Some(tx) = self.txs.get_mut(&id) else { continue };
            if tx.armed().get(kind) != Some(at) {
                continue;
            }
            let done = match tx {
                Tx::Server(s) => {
                    s.armed.set(kind, None);
                    s.on_timer(at, kind, &self.config, &mut self.out)
                }
                Tx::Client(c) => {
                    c.armed.set(kind, None);
                    c.on_timer(at, kind, &self.config, &mut self.out)
                }
            };
            if done {
                self.terminate(id);
            }
        }
    }

    /// The earliest instant at which [`TransactionLayer::handle_timeout`] has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let txs = &self.txs;
        self.out
            .timers
            .prune(|id, kind, at| txs.get(&id).is_some_and(|t| t.armed().get(kind) == Some(at)));
        self.out.timers.peek().map(|(at, _, _)| at)
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn server_transactions(&self) -> usize {
        self.txs.values().filter(|t| matches!(t, Tx::Server(_))).count()
    }

    pub fn client_transactions(&self) -> usize {
        self.txs.values().filter(|t| matches!(t, Tx::Client(_))).count()
    }

    /// Server transactions the TU has not yet answered with a final response.
    pub fn pending_server_transactions(&self) -> usize {
        self.txs
            .values()
            .filter(|t| matches!(t, Tx::Server(s) if s.awaiting_final()))
            .count()
    }

    /// The request that created a transaction (for a server transaction, until its final
    /// response is sent).
    pub fn request_of(&self, tx: TxId) -> Option<&Message> {
        match self.txs.get(&tx) {
            Some(Tx::Server(s)) => s.request.as_ref(),
            Some(Tx::Client(c)) => Some(&c.request),
            None => None,
        }
    }

    /// Entries in the timer queue, stale ones included (for tests and metrics).
    pub fn timer_entries(&self) -> usize {
        self.out.timers.len()
    }
}
