//! Client transactions (RFC 3261 §17.1, with the Accepted state of RFC 6026 §7.2):
//!
//! ```text
//! INVITE:      Calling --A: resend--> Calling --B--> Terminated (Timeout)
//!              Calling/Proceeding --1xx--> Proceeding --2xx--> Accepted --M--> Terminated
//!                                 --300-699 (send ACK)--> Completed --D--> Terminated
//! non-INVITE:  Trying --E: resend--> Trying --1xx--> Proceeding --final--> Completed --K--> Terminated
//!              Trying/Proceeding --F--> Terminated (Timeout)
//! ```
//!
//! Retransmitted final responses are absorbed (the ACK is sent again for each non-2xx), except
//! 2xx in Accepted, which go to the TU so that a proxy can forward every one of them.

use std::time::{Duration, Instant};

use sip::{Message, Method};

use crate::ack::ack_for;
use crate::key::ClientKey;
use crate::timer::{Armed, TimerKind};
use crate::{Event, Out, Peer, TimerConfig, TxId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
}

#[derive(Debug)]
pub struct ClientTx {
    pub id: TxId,
    pub key: ClientKey,
    pub invite: bool,
    pub state: ClientState,
    pub request: Message,
    pub peer: Peer,
    pub armed: Armed,
    interval: Duration,
    ack: Option<Message>,
}

impl ClientTx {
    pub fn start(
        id: TxId,
        key: ClientKey,
        request: Message,
        peer: Peer,
        now: Instant,
        cfg: &TimerConfig,
        out: &mut Out,
    ) -> Self {
        let invite = request.method() == Some(&Method::Invite);
        let mut tx = ClientTx {
            id,
            key,
            invite,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request,
            peer,
            armed: Armed::default(),
            interval: cfg.t1,
            ack: None,
        };
        out.transmit(Some(id), tx.peer.clone(), tx.request.clone());
        let (retransmit, timeout) = if invite {
            (TimerKind::A, TimerKind::B)
        } else {
            (TimerKind::E, TimerKind::F)
        };
        if !tx.peer.transport.is_reliable() {
            out.arm(&mut tx.armed, id, retransmit, now + cfg.t1);
        }
        out.arm(&mut tx.armed, id, timeout, now + cfg.t1x64());
        tx
    }

    /// A response matched this transaction.
    pub fn on_response(&mut self, now: Instant, resp: Message, cfg: &TimerConfig, out: &mut Out) {
        let Some(code) = resp.status_code() else { return };
        let reliable = self.peer.transport.is_reliable();
        if self.invite {
            match (self.state, code) {
                (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                    self.state = ClientState::Proceeding;
                    out.disarm(&mut self.armed, TimerKind::A);
                    out.disarm(&mut self.armed, TimerKind::B);
                    out.events.push_back(Event::Response {
                        tx: self.id,
                        response: resp,
                    });
                }
                (ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                    self.state = ClientState::Accepted;
                    out.disarm(&mut self.armed, TimerKind::A);
                    out.disarm(&mut self.armed, TimerKind::B);
                    out.arm(&mut self.armed, self.id, TimerKind::M, now + cfg.t1x64());
                    out.events.push_back(Event::Response {
                        tx: self.id,
                        response: resp,
                    });
                }
                (ClientState::Accepted, 200..=299) => {
                    out.events.push_back(Event::Response {
                        tx: self.id,
                        response: resp,
                    });
                }
                (ClientState::Calling | ClientState::Proceeding, 300..=699) => {
                    self.state = ClientState::Completed;
                    out.disarm(&mut self.armed, TimerKind::A);
                    out.disarm(&mut self.armed, TimerKind::B);
                    self.ack = ack_for(&self.request, &resp);
                    if let Some(ack) = &self.ack {
                        out.transmit(Some(self.id), self.peer.clone(), ack.clone());
                    }
                    let d = if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32).max(cfg.t1x64())
                    };
                    out.arm(&mut self.armed, self.id, TimerKind::D, now + d);
                    out.events.push_back(Event::Response {
                        tx: self.id,
                        response: resp,
                    });
                }
                (ClientState::Completed, 300..=699) => {
                    if let Some(ack) = &self.ack {
                        out.transmit(Some(self.id), self.peer.clone(), ack.clone());
                    }
                }
                _ => {}
            }
            return;
        }
        match (self.state, code) {
            (ClientState::Trying | ClientState::Proceeding, 100..=199) => {
                self.state = ClientState::Proceeding;
                out.events.push_back(Event::Response {
                    tx: self.id,
                    response: resp,
                });
            }
            (ClientState::Trying | ClientState::Proceeding, 200..=699) => {
                self.state = ClientState::Completed;
                out.disarm(&mut self.armed, TimerKind::E);
                out.disarm(&mut self.armed, TimerKind::F);
                let k = if reliable { Duration::ZERO } else { cfg.t4 };
                out.arm(&mut self.armed, self.id, TimerKind::K, now + k);
                out.events.push_back(Event::Response {
                    tx: self.id,
                    response: resp,
                });
            }
            _ => {}
        }
    }

    /// A timer fired. Returns true when the transaction is over.
    pub fn on_timer(&mut self, now: Instant, kind: TimerKind, cfg: &TimerConfig, out: &mut Out) -> bool {
        match (kind, self.state) {
            (TimerKind::A, ClientState::Calling) => {
                out.transmit(Some(self.id), self.peer.clone(), self.request.clone());
                self.interval *= 2;
                out.arm(&mut self.armed, self.id, TimerKind::A, now + self.interval);
                false
            }
            (TimerKind::B, ClientState::Calling) | (TimerKind::F, ClientState::Trying | ClientState::Proceeding) => {
                out.events.push_back(Event::Timeout { tx: self.id });
                true
            }
            (TimerKind::E, ClientState::Trying | ClientState::Proceeding) => {
                out.transmit(Some(self.id), self.peer.clone(), self.request.clone());
                self.interval = if self.state == ClientState::Trying {
                    (self.interval * 2).min(cfg.t2)
                } else {
                    cfg.t2
                };
                out.arm(&mut self.armed, self.id, TimerKind::E, now + self.interval);
                false
            }
            (TimerKind::D, ClientState::Completed)
            | (TimerKind::K, ClientState::Completed)
            | (TimerKind::M, ClientState::Accepted) => true,
            _ => false,
        }
    }
}
