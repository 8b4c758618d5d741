//! Server transactions (RFC 3261 §17.2, with the Accepted state of RFC 6026 §7.1):
//!
//! ```text
//! INVITE:      Proceeding --1xx--> Proceeding --2xx--> Accepted --L--> Terminated
//!                          --300-699--> Completed --ACK--> Confirmed --I--> Terminated
//!                                       Completed --H--> Terminated (Timeout)
//! non-INVITE:  Trying --1xx--> Proceeding --final--> Completed --J--> Terminated
//! ```
//!
//! Request retransmissions are absorbed here: the last response sent is sent again (nothing in
//! Accepted, where the TU retransmits its 2xx). An INVITE the TU leaves unanswered gets a 100
//! Trying from the layer after `trying_delay`.

use std::time::Instant;

use bytes::Bytes;
use sip::{Message, Method};

use crate::key::ServerKey;
use crate::timer::{Armed, TimerKind};
use crate::{Event, Out, Peer, TimerConfig, TxId, TxnError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug)]
pub struct ServerTx {
    pub id: TxId,
    pub key: ServerKey,
    pub invite: bool,
    pub state: ServerState,
    /// The request, until the final response is sent (afterwards only the response is needed:
    /// a Completed transaction may linger 64*T1, so it keeps as little as possible).
    pub request: Option<Message>,
    pub peer: Peer,
    /// The last response sent, in wire form: a Completed transaction may linger 64*T1, and bytes
    /// cost a fraction of a `Message`'s memory. Re-parsed only for a retransmission.
    last_response: Option<Bytes>,
    pub armed: Armed,
    /// Current Timer G interval.
    g_interval: std::time::Duration,
}

impl ServerTx {
    pub fn new(
        id: TxId,
        key: ServerKey,
        request: Message,
        peer: Peer,
        now: Instant,
        cfg: &TimerConfig,
        out: &mut Out,
    ) -> Self {
        let invite = request.method() == Some(&Method::Invite);
        let mut tx = ServerTx {
            id,
            key,
            invite,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            request: Some(request),
            peer,
            last_response: None,
            armed: Armed::default(),
            g_interval: cfg.t1,
        };
        if invite {
            if cfg.trying_delay.is_zero() {
                tx.send_trying(out);
            } else {
                out.arm(&mut tx.armed, id, TimerKind::Trying, now + cfg.trying_delay);
            }
        }
        tx
    }

    fn send_trying(&mut self, out: &mut Out) {
        let Some(request) = &self.request else { return };
        let trying = Message::response_to(request, 100, None, None);
        self.last_response = Some(trying.to_bytes());
        out.transmit(Some(self.id), self.peer.clone(), trying);
    }

    /// The last response again, for a retransmission.
    fn resend(&self) -> Option<Message> {
        self.last_response.clone().and_then(|b| Message::parse(b).ok())
    }

    /// The TU has not answered yet with a final response.
    pub fn awaiting_final(&self) -> bool {
        matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }

    /// A retransmission of the request (or, for INVITE, an ACK) arrived from `from`.
    pub fn on_request(&mut self, now: Instant, req: Message, from: Peer, cfg: &TimerConfig, out: &mut Out) {
        let is_ack = req.method() == Some(&Method::Ack);
        if is_ack {
            match self.state {
                ServerState::Completed if self.invite => {
                    self.state = ServerState::Confirmed;
                    out.disarm(&mut self.armed, TimerKind::G);
                    out.disarm(&mut self.armed, TimerKind::H);
                    let i = if self.peer.transport.is_reliable() {
                        std::time::Duration::ZERO
                    } else {
                        cfg.t4
                    };
                    out.arm(&mut self.armed, self.id, TimerKind::I, now + i);
                }
                ServerState::Accepted => {
                    out.events.push_back(Event::Ack {
                        request: req,
                        from,
                        invite: Some(self.id),
                    });
                }
                // ACK retransmissions in Confirmed, or an ACK while still Proceeding: absorbed.
                _ => {}
            }
            return;
        }
        match self.state {
            ServerState::Trying | ServerState::Accepted => {}
            ServerState::Proceeding | ServerState::Completed | ServerState::Confirmed => {
                if let Some(r) = self.resend() {
                    out.transmit(Some(self.id), from, r);
                }
            }
        }
    }

    /// The TU sends a response.
    pub fn respond(&mut self, now: Instant, resp: Message, cfg: &TimerConfig, out: &mut Out) -> Result<(), TxnError> {
        let code = resp.status_code().ok_or(TxnError::NotAResponse)?;
        let reliable = self.peer.transport.is_reliable();
        match (self.state, code) {
            (ServerState::Trying | ServerState::Proceeding, 100..=199) => {
                self.state = ServerState::Proceeding;
                out.disarm(&mut self.armed, TimerKind::Trying);
            }
            (ServerState::Proceeding, 200..=299) if self.invite => {
                self.state = ServerState::Accepted;
                out.disarm(&mut self.armed, TimerKind::Trying);
                out.arm(&mut self.armed, self.id, TimerKind::L, now + cfg.t1x64());
            }
            (ServerState::Accepted, 200..=299) => {}
            (ServerState::Proceeding, 300..=699) if self.invite => {
                self.state = ServerState::Completed;
                out.disarm(&mut self.armed, TimerKind::Trying);
                if !reliable {
                    self.g_interval = cfg.t1;
                    out.arm(&mut self.armed, self.id, TimerKind::G, now + cfg.t1);
                }
                out.arm(&mut self.armed, self.id, TimerKind::H, now + cfg.t1x64());
            }
            (ServerState::Trying | ServerState::Proceeding, 200..=699) if !self.invite => {
                self.state = ServerState::Completed;
                let j = if reliable {
                    std::time::Duration::ZERO
                } else {
                    cfg.t1x64()
                };
                out.arm(&mut self.armed, self.id, TimerKind::J, now + j);
            }
            _ => return Err(TxnError::InvalidState("a final response was already sent")),
        }
        if code >= 200 {
            self.request = None;
        }
        if self.state != ServerState::Accepted {
            self.last_response = Some(resp.to_bytes());
        }
        out.transmit(Some(self.id), self.peer.clone(), resp);
        Ok(())
    }

    /// A timer fired. Returns true when the transaction is over.
    pub fn on_timer(&mut self, now: Instant, kind: TimerKind, cfg: &TimerConfig, out: &mut Out) -> bool {
        match (kind, self.state) {
            (TimerKind::Trying, ServerState::Proceeding) if self.last_response.is_none() => {
                self.send_trying(out);
                false
            }
            (TimerKind::G, ServerState::Completed) => {
                if let Some(r) = self.resend() {
                    out.transmit(Some(self.id), self.peer.clone(), r);
                }
                self.g_interval = (self.g_interval * 2).min(cfg.t2);
                out.arm(&mut self.armed, self.id, TimerKind::G, now + self.g_interval);
                false
            }
            (TimerKind::H, ServerState::Completed) => {
                out.events.push_back(Event::Timeout { tx: self.id });
                true
            }
            (TimerKind::I, ServerState::Confirmed)
            | (TimerKind::J, ServerState::Completed)
            | (TimerKind::L, ServerState::Accepted) => true,
            _ => false,
        }
    }
}
