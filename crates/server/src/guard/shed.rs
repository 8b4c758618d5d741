//! The overload answer without a parse (issue #10): when the receive queue stands
//! (`flood::OverloadDetector`), new requests are turned away with a stateless 503 +
//! Retry-After. At three times capacity the receive thread cannot afford to parse every request
//! it turns away: the kernel then drops datagrams of flows already admitted, their phones
//! retransmit, and goodput collapses. [`quick`] reads only what a stateless response copies
//! from its request (RFC 3261 §8.2.6.2: every Via, From, To, Call-ID, CSeq) from the raw
//! datagram, in one pass over its header lines, and writes the 503.
//!
//! It answers only what is plainly the first request of a new transaction outside a dialog,
//! without credentials (what `flood::sheddable` sheds after a parse); for anything it is not sure
//! of (a response; ACK, CANCEL or BYE; credentials; a To tag; folded or compact-form-ambiguous
//! header lines; a missing or repeated header; no end of headers) it says [`Quick::Unsure`] and
//! the caller takes the parsed path, which applies the same rules with the full parser. A request
//! from a blocked scanner User-Agent is [`Quick::Drop`]ped, unanswered as ever.

use sip::Method;

use super::agents::Agents;

/// What to do with a datagram turned away for overload.
#[derive(Debug, PartialEq, Eq)]
pub enum Quick {
    /// Send this 503 back to the datagram's source; the request was this method.
    Answer(Vec<u8>, Method),
    /// A blocked scanner: no answer.
    Drop,
    /// Not plainly sheddable: parse it and decide.
    Unsure,
}

/// The header lines a 503 copies, as found.
#[derive(Default)]
struct Copied<'a> {
    vias: Vec<&'a [u8]>,
    from: Option<&'a [u8]>,
    to: Option<&'a [u8]>,
    call_id: Option<&'a [u8]>,
    cseq: Option<&'a [u8]>,
}

/// Sets `slot` to `line` if it is empty; false when the header repeats.
fn once<'a>(slot: &mut Option<&'a [u8]>, line: &'a [u8]) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(line);
    true
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// The 503 for a datagram `raw`, or why not (see the module comment).
pub fn quick(raw: &[u8], agents: &Agents, retry_after: u32) -> Quick {
    let Some(end) = memchr::memmem::find(raw, b"\r\n\r\n") else {
        return Quick::Unsure;
    };
    let mut lines = raw[..end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(request_line) = lines.next() else {
        return Quick::Unsure;
    };
    let Some(method) = request_line
        .split(|&b| b == b' ')
        .next()
        .and_then(|m| std::str::from_utf8(m).ok())
        .and_then(Method::parse)
    else {
        return Quick::Unsure;
    };
    if matches!(method, Method::Ack | Method::Cancel | Method::Bye) || !request_line.ends_with(b" SIP/2.0") {
        return Quick::Unsure;
    }
    let mut copied = Copied::default();
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Quick::Unsure; // a folded line: leave it to the parser
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Quick::Unsure;
        };
        let name = line[..colon].trim_ascii();
        let value = &line[colon + 1..];
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        let ok = if is(b"via") || is(b"v") {
            copied.vias.push(line);
            true
        } else if is(b"from") || is(b"f") {
            once(&mut copied.from, line)
        } else if is(b"to") || is(b"t") {
            // A To tag: a request inside a dialog, which shedding leaves alone.
            !contains_ignore_case(value, b"tag=") && once(&mut copied.to, line)
        } else if is(b"call-id") || is(b"i") {
            once(&mut copied.call_id, line)
        } else if is(b"cseq") {
            once(&mut copied.cseq, line)
        } else if is(b"authorization") || is(b"proxy-authorization") {
            false // credentials: work already admitted
        } else {
            if is(b"user-agent") && std::str::from_utf8(value).is_ok_and(|ua| agents.blocks_agent(ua)) {
                return Quick::Drop;
            }
            true
        };
        if !ok {
            return Quick::Unsure;
        }
    }
    let (Some(from), Some(to), Some(call_id), Some(cseq)) = (copied.from, copied.to, copied.call_id, copied.cseq)
    else {
        return Quick::Unsure;
    };
    if copied.vias.is_empty() {
        return Quick::Unsure;
    }
    let mut out = Vec::with_capacity(end + 96);
    out.extend_from_slice(b"SIP/2.0 503 Service Unavailable\r\n");
    for via in &copied.vias {
        out.extend_from_slice(via);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(from);
    out.extend_from_slice(b"\r\n");
    // A To tag, as every final response carries (§8.2.6.2); no dialog comes of a 503.
    out.extend_from_slice(to.trim_ascii_end());
    out.extend_from_slice(b";tag=overload\r\n");
    for line in [call_id, cseq] {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Retry-After: {retry_after}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    Quick::Answer(out, method)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1;rport\r\n\
        v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK0\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:1000@example.com>;tag=abc\r\n\
        To: <sip:1000@example.com>\r\n\
        Call-ID: c1@192.0.2.7\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:1000@192.0.2.7:5060>\r\n\
        User-Agent: Yealink\r\n\
        Content-Length: 0\r\n\r\n";

    fn agents() -> Agents {
        Agents::new(&["friendly-scanner".to_owned()])
    }

    #[test]
    fn answers_a_new_request_as_the_parsed_path_would() {
        let Quick::Answer(bytes, method) = quick(REGISTER.as_bytes(), &agents(), 5) else {
            panic!("a plain REGISTER is sheddable");
        };
        assert_eq!(method, Method::Register);
        let ours = sip::Message::parse(bytes.clone()).expect("a valid response");
        assert_eq!(ours.status_code(), Some(503));
        assert_eq!(ours.header("Retry-After"), Some("5"));
        let request = sip::Message::parse(REGISTER.as_bytes().to_vec()).expect("request");
        let mut parsed = sip::Message::response_to(&request, 503, Some("Service Unavailable"), Some("overload"));
        parsed.push_header(sip::HeaderName::RetryAfter, "5");
        for name in ["Via", "From", "To", "Call-ID", "CSeq", "Retry-After"] {
            let a: Vec<&str> = ours.header_values(name).collect();
            let b: Vec<&str> = parsed.header_values(name).collect();
            assert_eq!(a, b, "{name}");
        }
        assert_eq!(
            ours.to_header()
                .ok()
                .and_then(|t| t.tag().map(str::to_owned))
                .as_deref(),
            Some("overload")
        );
    }

    #[test]
    fn leaves_everything_else_to_the_parser() {
        let with = |from: &str, to: &str| REGISTER.replacen(from, to, 1);
        for unsure in [
            with("REGISTER sip:", "ACK sip:"),
            with("REGISTER sip:", "BYE sip:"),
            with("REGISTER sip:example.com SIP/2.0", "SIP/2.0 200 OK"),
            with("To: <sip:1000@example.com>", "To: <sip:1000@example.com>;tag=x"),
            with("User-Agent: Yealink", "Authorization: Digest username=\"1000\""),
            with("User-Agent: Yealink", "proxy-authorization: Digest username=\"1000\""),
            with("Call-ID: c1@192.0.2.7\r\n", ""),
            with("CSeq: 1 REGISTER", "CSeq: 1 REGISTER\r\nCSeq: 2 REGISTER"),
            with("Max-Forwards: 70", "Max-Forwards: 70\r\n  folded"),
            with("\r\n\r\n", "\r\n"),
            "garbage".to_owned(),
        ] {
            assert_eq!(quick(unsure.as_bytes(), &agents(), 5), Quick::Unsure, "{unsure}");
        }
        let scanner = with("User-Agent: Yealink", "User-Agent: friendly-scanner");
        assert_eq!(quick(scanner.as_bytes(), &agents(), 5), Quick::Drop);
    }
}
