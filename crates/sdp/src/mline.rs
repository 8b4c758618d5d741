//! The media line, `m=<media> <port>[/<count>] <proto> <fmt> ...` (RFC 8866 §5.14).
//!
//! Kept both as received (written back unchanged) and split into fields; any edit re-renders the
//! line in canonical form (single spaces). For RTP profiles (`RTP/AVP`, `RTP/SAVPF`,
//! `UDP/TLS/RTP/SAVPF`, ...) every format must be a payload type 0–127 (RFC 3551 §3); other
//! protocols (`udptl`, `TCP/MSRP`, ...) take any token. A media line without formats is tolerated
//! although the grammar wants one.

use crate::attr::{decimal, payload_type};
use crate::error::Problem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MLine {
    pub raw: String,
    pub kind: String,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
}

/// Whether `proto` is an RTP profile, whose formats are payload types.
pub(crate) fn is_rtp(proto: &str) -> bool {
    proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
}

impl MLine {
    pub fn parse(value: &str) -> Result<MLine, Problem> {
        let mut fields = value.split_ascii_whitespace();
        let (Some(kind), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(Problem::BadMedia);
        };
        let (port, port_count) = match port.split_once('/') {
            Some((p, n)) => (p, Some(decimal::<u16>(n).ok_or(Problem::BadPort)?)),
            None => (port, None),
        };
        let port = decimal::<u16>(port).ok_or(Problem::BadPort)?;
        let formats: Vec<String> = fields.map(str::to_owned).collect();
        if is_rtp(proto) && formats.iter().any(|f| payload_type(f).is_none()) {
            return Err(Problem::BadPayloadType);
        }
        Ok(MLine {
            raw: value.to_owned(),
            kind: kind.to_owned(),
            port,
            port_count,
            proto: proto.to_owned(),
            formats,
        })
    }

    pub fn is_rtp(&self) -> bool {
        is_rtp(&self.proto)
    }

    /// Re-renders `raw` after an edit of the fields.
    pub fn render(&mut self) {
        let mut s = format!("{} {}", self.kind, self.port);
        if let Some(n) = self.port_count {
            s.push_str(&format!("/{n}"));
        }
        s.push(' ');
        s.push_str(&self.proto);
        for f in &self.formats {
            s.push(' ');
            s.push_str(f);
        }
        self.raw = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let mut m = MLine::parse("audio 49170 RTP/AVP 0 8  97 ").expect("valid");
        assert_eq!((m.kind.as_str(), m.port, m.port_count), ("audio", 49170, None));
        assert_eq!(m.formats, ["0", "8", "97"]);
        assert_eq!(m.raw, "audio 49170 RTP/AVP 0 8  97 ");
        m.port = 0;
        m.render();
        assert_eq!(m.raw, "audio 0 RTP/AVP 0 8 97");
        let m = MLine::parse("video 49170/2 RTP/AVP 31").expect("valid");
        assert_eq!(m.port_count, Some(2));
        let m = MLine::parse("image 6000 udptl t38").expect("valid");
        assert!(!m.is_rtp());
        assert!(MLine::parse("audio 0 UDP/TLS/RTP/SAVPF 111").expect("valid").is_rtp());
    }

    #[test]
    fn rejects() {
        assert_eq!(MLine::parse("audio 49170"), Err(Problem::BadMedia));
        assert_eq!(MLine::parse("audio x RTP/AVP 0"), Err(Problem::BadPort));
        assert_eq!(MLine::parse("audio 70000 RTP/AVP 0"), Err(Problem::BadPort));
        assert_eq!(MLine::parse("audio 1/x RTP/AVP 0"), Err(Problem::BadPort));
        assert_eq!(MLine::parse("audio 1 RTP/AVP 0 PCMU"), Err(Problem::BadPayloadType));
        assert_eq!(MLine::parse("audio 1 RTP/AVP 128"), Err(Problem::BadPayloadType));
    }
}
