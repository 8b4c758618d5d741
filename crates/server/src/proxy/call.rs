//! Call tracking: what the proxy knows of each call it routes (RFC 3261 §16.7 response context
//! per INVITE), and how a finished call becomes a call record.
//!
//! A call is keyed by Call-ID from the INVITE that created it until it ends: a final non-2xx
//! response sent upstream, CANCEL, the ring timeout or Timer C, or a BYE from either side.

use std::time::Instant;

use sip::Message;
use sip_txn::{Peer, TxId};
use store::Disposition;

/// One downstream INVITE of a forked call (§16.6).
#[derive(Debug)]
pub struct Branch {
    pub tx: TxId,
    /// The INVITE as forwarded, kept to build its CANCEL (§9.1).
    pub request: Message,
    pub to: Peer,
    /// The phone registered over TLS (or WSS): SDES keys may go to it (see `super::media`).
    pub secure: bool,
    /// `to` is another node of the platform, which holds the phone's flow.
    pub hop: bool,
    /// The contact it rings.
    pub target: String,
    /// A provisional response arrived, so a CANCEL may be sent (§9.1).
    pub provisional: bool,
    pub final_status: Option<u16>,
    /// A CANCEL is wanted but waits for the first provisional response.
    pub cancel_pending: bool,
    pub cancel_sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Branches ring; no final response went upstream yet.
    Routing,
    /// A 2xx went upstream: the dialog is up until a BYE.
    Answered,
}

#[derive(Debug)]
pub struct Call {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    /// The From tag of the INVITE: requests with it come from the caller.
    pub caller_tag: String,
    pub server_tx: TxId,
    /// Where the caller's requests come from (its NAT binding, its connection).
    pub caller_peer: Peer,
    /// The branch that answered.
    pub callee_peer: Option<Peer>,
    /// The callee's phone is on TLS (or WSS): the answering branch's, or before the answer the
    /// branch that sent the latest response (at first: whether any branch is).
    pub callee_secure: bool,
    /// The callee's branch goes through another node of the platform.
    pub callee_hop: bool,
    pub branches: Vec<Branch>,
    /// The best final response so far (§16.7 step 6).
    pub best: Option<Message>,
    pub cancelled: bool,
    pub phase: Phase,
    pub started: Instant,
    pub answered: Option<Instant>,
    pub answered_by: Option<String>,
    /// The ring timeout: unanswered by then, the caller gets 480.
    pub ring_deadline: Instant,
    /// Timer C (§16.6 step 11): restarted by every provisional response.
    pub timer_c: Instant,
    /// The dialog as the proxy saw it, to end it itself (media timeout, admin hang-up): the
    /// caller's From and Contact, and, once answered, the To (with the callee's tag) and
    /// Contact of the 2xx.
    pub dialog: Dialog,
    /// The relay streams of the call and the codecs chosen.
    pub media: super::media::CallMedia,
    /// The INVITE carried an offer (otherwise the 2xx carries it and the ACK the answer).
    pub invite_had_sdp: bool,
    /// The node this call came from over an internal hop (see `crate::cluster`): it anchors
    /// the media and writes the record.
    pub hop_from: Option<String>,
}

/// What it takes to send a BYE to each side of a dialog (RFC 3261 §12.2.1.1).
#[derive(Debug, Clone, Default)]
pub struct Dialog {
    /// From of the INVITE (caller's tag).
    pub caller_from: String,
    /// To of the 2xx (callee's tag).
    pub callee_to: String,
    pub caller_contact: String,
    pub callee_contact: String,
    /// The highest CSeq each side has used in the dialog.
    pub caller_cseq: u32,
    pub callee_cseq: u32,
}

/// The URI inside a Contact header value.
pub fn contact_uri(value: &str) -> Option<String> {
    sip::headers::Contact::parse(value)
        .ok()
        .and_then(|c| c.addr().map(|a| a.uri.as_str().to_owned()))
}

impl Call {
    /// Whether an in-dialog request comes from the caller: its From tag is the INVITE's.
    pub fn sent_by_caller(&self, req: &Message) -> bool {
        req.from_header()
            .ok()
            .and_then(|f| f.tag().map(|t| t == self.caller_tag))
            .unwrap_or(false)
    }

    pub fn all_final(&self) -> bool {
        self.branches.iter().all(|b| b.final_status.is_some())
    }

    pub fn branch_of(&mut self, tx: TxId) -> Option<&mut Branch> {
        self.branches.iter_mut().find(|b| b.tx == tx)
    }

    /// Keeps `resp` if it beats the best final response so far.
    pub fn consider(&mut self, resp: &Message) {
        let code = resp.status_code().unwrap_or(500);
        let better = match self.best.as_ref().and_then(Message::status_code) {
            None => true,
            Some(best) => rank(code) < rank(best),
        };
        if better {
            self.best = Some(resp.clone());
        }
    }
}

/// Ranks final responses for §16.7 step 6; the lowest wins: any 6xx, then the lowest class.
/// Within 4xx, busy (486) tells the caller the most and time-outs (408, 480) the least.
pub fn rank(code: u16) -> u32 {
    let code32 = u32::from(code);
    match code {
        600..=699 => code32 - 600,
        300..=399 => 1_000 + code32,
        486 => 2_000,
        408 => 2_998,
        480 => 2_997,
        400..=499 => 2_000 + code32,
        _ => 3_000 + code32,
    }
}

/// How a call that got `status` upstream is recorded.
pub fn disposition(status: u16, cancelled: bool) -> Disposition {
    match status {
        200..=299 => Disposition::Answered,
        _ if cancelled => Disposition::Cancelled,
        486 | 600 | 603 => Disposition::Busy,
        408 | 480 => Disposition::NoAnswer,
        _ => Disposition::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_response_order() {
        let mut codes = [500, 480, 486, 404, 408, 302, 603, 503];
        codes.sort_by_key(|c| rank(*c));
        assert_eq!(codes, [603, 302, 486, 404, 480, 408, 500, 503]);
    }

    #[test]
    fn dispositions() {
        assert_eq!(disposition(200, false), Disposition::Answered);
        assert_eq!(disposition(200, true), Disposition::Answered);
        assert_eq!(disposition(487, true), Disposition::Cancelled);
        assert_eq!(disposition(486, false), Disposition::Busy);
        assert_eq!(disposition(480, false), Disposition::NoAnswer);
        assert_eq!(disposition(404, false), Disposition::Failed);
    }
}
