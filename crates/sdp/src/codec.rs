//! Codecs: what an RTP payload type stands for, from `a=rtpmap`/`a=fmtp` (RFC 8866 §6.6,
//! §6.15) or, for static payload types without `a=rtpmap`, from the RFC 3551 §6 tables.

use crate::attr::{parse_fmtp, parse_rtpmap, payload_type};
use crate::line::Line;

/// A payload type resolved to a codec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Codec {
    /// RTP payload type, 0–127.
    pub pt: u8,
    /// Encoding name as written (`opus`, `PCMU`, `telephone-event`); compare case-insensitively.
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock: u32,
    /// Encoding parameters of `a=rtpmap` (channels, for audio); `None` when not given.
    pub channels: Option<u8>,
    /// The parameters of the `a=fmtp` line for this payload type, if any.
    pub fmtp: Option<String>,
}

impl Codec {
    /// Whether this is the same codec as `other` by name (ASCII case-insensitive) and clock rate.
    pub fn same_codec(&self, other: &Codec) -> bool {
        self.name.eq_ignore_ascii_case(&other.name) && self.clock == other.clock
    }

    /// Whether this payload carries no media by itself: DTMF events (RFC 4733), comfort noise
    /// (RFC 3389), redundancy (RFC 2198), retransmission (RFC 4588) and FEC (RFC 5109, 8627).
    pub fn is_auxiliary(&self) -> bool {
        ["telephone-event", "CN", "red", "rtx", "ulpfec", "flexfec"]
            .iter()
            .any(|n| self.name.eq_ignore_ascii_case(n))
    }
}

/// The static payload types of RFC 3551 §6 (Tables 4 and 5): name, clock rate, channels when
/// the table gives more than one.
pub fn static_payload_type(pt: u8) -> Option<(&'static str, u32, Option<u8>)> {
    Some(match pt {
        0 => ("PCMU", 8000, None),
        3 => ("GSM", 8000, None),
        4 => ("G723", 8000, None),
        5 => ("DVI4", 8000, None),
        6 => ("DVI4", 16000, None),
        7 => ("LPC", 8000, None),
        8 => ("PCMA", 8000, None),
        9 => ("G722", 8000, None),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, None),
        12 => ("QCELP", 8000, None),
        13 => ("CN", 8000, None),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, None),
        16 => ("DVI4", 11025, None),
        17 => ("DVI4", 22050, None),
        18 => ("G729", 8000, None),
        25 => ("CelB", 90000, None),
        26 => ("JPEG", 90000, None),
        28 => ("nv", 90000, None),
        31 => ("H261", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        34 => ("H263", 90000, None),
        _ => return None,
    })
}

/// The codec behind format `format` of a media section whose lines are `lines`; `None` for a
/// format that is not a payload type, or a dynamic one without `a=rtpmap`.
pub(crate) fn resolve(format: &str, lines: &[Line]) -> Option<Codec> {
    let pt = payload_type(format)?;
    let fmtp = lines
        .iter()
        .filter_map(|l| l.attribute_value("fmtp").and_then(parse_fmtp))
        .find(|(f, _)| payload_type(f) == Some(pt))
        .map(|(_, params)| params.to_owned());
    let mapped = lines
        .iter()
        .filter_map(|l| l.attribute_value("rtpmap").and_then(parse_rtpmap))
        .find(|r| r.pt == pt);
    let (name, clock, channels) = match mapped {
        Some(r) => (r.name.to_owned(), r.clock, r.channels),
        None => {
            let (name, clock, channels) = static_payload_type(pt)?;
            (name.to_owned(), clock, channels)
        }
    };
    Some(Codec {
        pt,
        name,
        clock,
        channels,
        fmtp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves() {
        let lines = [
            Line::new(b'a', "rtpmap:96 opus/48000/2"),
            Line::new(b'a', "fmtp:96 useinbandfec=1"),
            Line::new(b'a', "fmtp:18 annexb=no"),
        ];
        let opus = resolve("96", &lines).expect("mapped");
        assert_eq!(
            (opus.name.as_str(), opus.clock, opus.channels),
            ("opus", 48000, Some(2))
        );
        assert_eq!(opus.fmtp.as_deref(), Some("useinbandfec=1"));
        let g729 = resolve("18", &lines).expect("static");
        assert_eq!((g729.name.as_str(), g729.fmtp.as_deref()), ("G729", Some("annexb=no")));
        assert_eq!(resolve("97", &lines), None);
        assert_eq!(resolve("t38", &lines), None);
        assert!(resolve("13", &lines).expect("static").is_auxiliary());
    }
}
