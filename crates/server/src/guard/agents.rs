//! Scanner User-Agents (issue #10 item 3): requests whose User-Agent contains one of the
//! `blocked_user_agents` strings (case-insensitive; SIPVicious says `friendly-scanner`) are
//! dropped unanswered, after parsing and before the trace or the engine see them: a scanner that
//! hears nothing moves on, and its flood does not push real calls out of the trace ring.
//!
//! This stops only the lazy: any scanner can send another User-Agent. The bans (see
//! [`super::bans`]) are what stops a guesser that does.

use std::sync::atomic::{AtomicU64, Ordering};

use sip::Message;

pub struct Agents {
    /// Lower-case needles; empty entries are left out (an empty list blocks nothing).
    needles: Vec<String>,
    dropped: AtomicU64,
}

impl Agents {
    pub fn new(blocked: &[String]) -> Self {
        Agents {
            needles: blocked
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether `m` is a request from a blocked User-Agent; counts it when it is.
    pub fn blocks(&self, m: &Message) -> bool {
        if self.needles.is_empty() || !m.is_request() {
            return false;
        }
        m.header("User-Agent").is_some_and(|ua| self.blocks_agent(ua))
    }

    /// Whether a User-Agent value is blocked; counts it when it is.
    pub fn blocks_agent(&self, ua: &str) -> bool {
        if self.needles.is_empty() {
            return false;
        }
        let ua = ua.to_ascii_lowercase();
        let hit = self.needles.iter().any(|n| ua.contains(n.as_str()));
        if hit {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Requests dropped for their User-Agent since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ua: Option<&str>) -> Message {
        let ua = ua.map(|u| format!("User-Agent: {u}\r\n")).unwrap_or_default();
        Message::parse(
            format!(
                "OPTIONS sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
                 From: <sip:100@192.0.2.1>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
                 {ua}Content-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        )
        .expect("valid")
    }

    #[test]
    fn blocks_by_substring_case_insensitively() {
        let a = Agents::new(&["friendly-scanner".into(), "VaxSIPUserAgent".into(), " ".into()]);
        assert!(a.blocks(&request(Some("friendly-scanner"))));
        assert!(a.blocks(&request(Some("Friendly-Scanner/0.3"))));
        assert!(a.blocks(&request(Some("vaxsipuseragent/3.1"))));
        assert!(!a.blocks(&request(Some("Linphone/5.0"))));
        assert!(!a.blocks(&request(None)));
        assert_eq!(a.dropped(), 3);
        let response = Message::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
              To: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\n\
              Content-Length: 0\r\n\r\n"
                .to_vec(),
        )
        .expect("valid");
        assert!(!a.blocks(&response), "only requests");
    }

    #[test]
    fn an_empty_list_blocks_nothing() {
        let a = Agents::new(&["".into()]);
        assert!(!a.blocks(&request(Some("friendly-scanner"))));
    }
}
