//! The SIP text of the REGISTER flow: building the two requests into a reused buffer, reading
//! responses with a small zero-copy scanner, and answering a digest challenge with `sip::digest`.
//!
//! Only what the generator needs is read from a response: the status code, Call-ID, the CSeq
//! number and the WWW-Authenticate / Proxy-Authenticate values (the challenges themselves are
//! parsed with `sip::headers::Challenge`, only for 401/407).

use std::borrow::Cow;

use sip::digest::{self, Algorithm};
use sip::headers::Challenge;

/// At most this many challenge headers are looked at in one response.
pub const MAX_CHALLENGES: usize = 4;

/// The nonce count sent with every answer (one answer per nonce).
pub const NC: &str = "00000001";

/// What the generator reads from a response; the slices borrow the datagram.
#[derive(Debug)]
pub struct Response<'a> {
    pub code: u16,
    pub call_id: &'a [u8],
    /// The sequence number of the CSeq header.
    pub cseq: u32,
    buf: &'a [u8],
    challenges: [(usize, usize); MAX_CHALLENGES],
    n_challenges: usize,
}

impl<'a> Response<'a> {
    /// The raw WWW-Authenticate / Proxy-Authenticate values (folds kept), in order.
    pub fn challenges(&self) -> impl Iterator<Item = &'a str> + '_ {
        let buf = self.buf;
        self.challenges[..self.n_challenges]
            .iter()
            .filter_map(move |&(s, e)| std::str::from_utf8(&buf[s..e]).ok())
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `line[s..e]` without surrounding blanks, as offsets into `line`.
fn trim_range(line: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && is_ws(line[s]) {
        s += 1;
    }
    while e > s && is_ws(line[e - 1]) {
        e -= 1;
    }
    (s, e)
}

/// Reads a SIP response. `None` for anything that is not a response with a Call-ID and a CSeq
/// (requests included).
pub fn parse_response(buf: &[u8]) -> Option<Response<'_>> {
    let rest = buf.strip_prefix(b"SIP/2.0 ")?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| !is_ws(b) && b != b'\r') {
        return None;
    }
    let code = digits.iter().fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    let mut call_id = None;
    let mut cseq = None;
    let mut challenges = [(0usize, 0usize); MAX_CHALLENGES];
    let mut n_challenges = 0;
    let mut in_challenge = false;
    let mut pos = memchr::memchr(b'\n', buf)? + 1;
    while pos < buf.len() {
        let nl = memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |i| pos + i);
        let end = if nl > pos && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
        let line = &buf[pos..end];
        if line.is_empty() {
            break; // end of the header section
        }
        if is_ws(line[0]) {
            // A fold continues the previous header.
            if in_challenge {
                challenges[n_challenges - 1].1 = end;
            }
        } else {
            in_challenge = false;
            let colon = memchr::memchr(b':', line)?;
            let (ns, ne) = trim_range(line, 0, colon);
            let name = &line[ns..ne];
            let (vs, ve) = trim_range(line, colon + 1, line.len());
            let value = &line[vs..ve];
            if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
                call_id = Some(value);
            } else if name.eq_ignore_ascii_case(b"cseq") {
                let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
                if digits == 0 || digits > 9 {
                    return None;
                }
                cseq = Some(
                    value[..digits]
                        .iter()
                        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0')),
                );
            } else if (name.eq_ignore_ascii_case(b"www-authenticate")
                || name.eq_ignore_ascii_case(b"proxy-authenticate"))
                && n_challenges < MAX_CHALLENGES
            {
                challenges[n_challenges] = (pos + vs, pos + ve);
                n_challenges += 1;
                in_challenge = true;
            }
        }
        pos = nl + 1;
    }
    Some(Response {
        code,
        call_id: call_id?,
        cseq: cseq?,
        buf,
        challenges,
        n_challenges,
    })
}

/// Appends the decimal digits of `v`.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// The fixed texts of one run, shared by all threads.
#[derive(Debug, Clone)]
pub struct Texts {
    /// The Request-URI, also the digest `uri`: `sip:IP:PORT`.
    pub ruri: String,
    /// The host part of From/To: the server IP unless told otherwise.
    pub domain: String,
    /// Tells this run's flows apart from any other run's: used in branches, tags and Call-IDs.
    pub run_id: String,
}

impl Texts {
    /// The Call-ID of flow `n` is `<call_id_prefix><n>`.
    pub fn call_id_prefix(&self) -> String {
        format!("{}-", self.run_id)
    }
}

/// The number of the flow a Call-ID belongs to, when it is one of this run's.
pub fn flow_number(call_id: &[u8], prefix: &[u8]) -> Option<u64> {
    let digits = call_id.strip_prefix(prefix)?;
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')))
}

/// Appends the REGISTER of flow `n`, transaction `cseq` (1 = first, 2 = with credentials), to
/// `out`. The same inputs always give the same bytes, so a retransmission is a
/// rebuild. `local` is the sending socket's `IP:PORT`; `authorization` is a full header value.
pub fn build_register(
    out: &mut Vec<u8>,
    texts: &Texts,
    local: &str,
    user: u64,
    n: u64,
    cseq: u8,
    auth_line: Option<&str>,
) {
    out.extend_from_slice(b"REGISTER ");
    out.extend_from_slice(texts.ruri.as_bytes());
    out.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/UDP ");
    out.extend_from_slice(local.as_bytes());
    out.extend_from_slice(b";branch=z9hG4bK");
    out.extend_from_slice(texts.run_id.as_bytes());
    out.push(b'.');
    push_u64(out, n);
    out.push(b'.');
    push_u64(out, u64::from(cseq));
    out.extend_from_slice(b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:");
    push_u64(out, user);
    out.push(b'@');
    out.extend_from_slice(texts.domain.as_bytes());
    out.extend_from_slice(b">;tag=");
    out.extend_from_slice(texts.run_id.as_bytes());
    out.push(b'.');
    push_u64(out, n);
    out.extend_from_slice(b"\r\nTo: <sip:");
    push_u64(out, user);
    out.push(b'@');
    out.extend_from_slice(texts.domain.as_bytes());
    out.extend_from_slice(b">\r\nCall-ID: ");
    out.extend_from_slice(texts.run_id.as_bytes());
    out.push(b'-');
    push_u64(out, n);
    out.extend_from_slice(b"\r\nCSeq: ");
    push_u64(out, u64::from(cseq));
    out.extend_from_slice(b" REGISTER\r\nContact: <sip:");
    push_u64(out, user);
    out.push(b'@');
    out.extend_from_slice(local.as_bytes());
    out.extend_from_slice(b">\r\n");
    if let Some(a) = auth_line {
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Expires: 3600\r\nUser-Agent: sipload\r\nContent-Length: 0\r\n\r\n");
}

/// The Digest challenge chosen among those offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer<'a> {
    pub algorithm: Algorithm,
    pub realm: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    pub opaque: Option<Cow<'a, str>>,
    /// `qop=auth` offered; without it the RFC 2069 form is used.
    pub qop_auth: bool,
}

/// Lower is preferred: MD5 when offered, else SHA-256, else SHA-512/256; `-sess` last.
fn rank(alg: Algorithm) -> u8 {
    match alg {
        Algorithm::Md5 => 0,
        Algorithm::Sha256 => 1,
        Algorithm::Sha512_256 => 2,
        Algorithm::Md5Sess => 3,
        Algorithm::Sha256Sess => 4,
        Algorithm::Sha512_256Sess => 5,
    }
}

/// Picks the Digest challenge to answer among the header values; `None` when there is no usable
/// one (no Digest, no realm or nonce, unknown algorithm, or a qop list without `auth`).
pub fn choose<'a>(values: impl Iterator<Item = &'a str>) -> Option<Offer<'a>> {
    let mut best: Option<Offer<'a>> = None;
    for value in values {
        let Ok(c) = Challenge::parse(value) else { continue };
        if !c.scheme.eq_ignore_ascii_case("Digest") {
            continue;
        }
        let (mut realm, mut nonce, mut opaque, mut qop) = (None, None, None, None);
        let mut algorithm = Some(Algorithm::Md5); // absent means MD5
        for (name, v) in c.params.iter() {
            if name.eq_ignore_ascii_case("realm") {
                realm = Some(v);
            } else if name.eq_ignore_ascii_case("nonce") {
                nonce = Some(v);
            } else if name.eq_ignore_ascii_case("opaque") {
                opaque = Some(v);
            } else if name.eq_ignore_ascii_case("algorithm") {
                algorithm = Algorithm::parse(&v);
            } else if name.eq_ignore_ascii_case("qop") {
                qop = Some(v);
            }
        }
        let (Some(algorithm), Some(realm), Some(nonce)) = (algorithm, realm, nonce) else {
            continue;
        };
        let qop_auth = match qop {
            None => false,
            Some(q) if q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) => true,
            Some(_) => continue, // auth-int only
        };
        if best.as_ref().is_none_or(|b| rank(algorithm) < rank(b.algorithm)) {
            best = Some(Offer {
                algorithm,
                realm,
                nonce,
                opaque,
                qop_auth,
            });
        }
    }
    best
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[derive(Debug)]
struct CachedHa1 {
    algorithm: Algorithm,
    realm: Box<str>,
    hex: String,
}

/// Computes Authorization values, caching HA1 per user and HA2 per algorithm and URI (the
/// password, realm and URI do not change during a run, so only the response hash is per flow).
#[derive(Debug, Default)]
pub struct Authenticator {
    ha1: Vec<Option<CachedHa1>>,
    ha2: Vec<(Algorithm, String, String, String)>,
}

impl Authenticator {
    pub fn new(users: usize) -> Authenticator {
        Authenticator {
            ha1: (0..users).map(|_| None).collect(),
            ha2: Vec::new(),
        }
    }

    fn ha1(&mut self, slot: usize, alg: Algorithm, username: &str, realm: &str, password: &str) -> &str {
        let fresh = match &self.ha1[slot] {
            Some(c) => c.algorithm != alg || *c.realm != *realm,
            None => true,
        };
        if fresh {
            self.ha1[slot] = Some(CachedHa1 {
                algorithm: alg,
                realm: realm.into(),
                hex: digest::ha1(alg, username, realm, password),
            });
        }
        self.ha1[slot].as_ref().map_or("", |c| c.hex.as_str())
    }

    fn ha2(&mut self, alg: Algorithm, method: &str, uri: &str) -> &str {
        let i = match self
            .ha2
            .iter()
            .position(|(a, m, u, _)| *a == alg && m == method && u == uri)
        {
            Some(i) => i,
            None => {
                let h = digest::ha2(alg, method, uri);
                self.ha2.push((alg, method.to_owned(), uri.to_owned(), h));
                self.ha2.len() - 1
            }
        };
        &self.ha2[i].3
    }

    /// The Authorization (or Proxy-Authorization) value answering `offer` for a request with
    /// this method and digest URI. `slot` is the user's index in the HA1 cache.
    #[allow(clippy::too_many_arguments)]
    pub fn authorization(
        &mut self,
        offer: &Offer<'_>,
        slot: usize,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> String {
        let alg = offer.algorithm;
        let base_ha1 = self.ha1(slot, alg.base(), username, &offer.realm, password).to_owned();
        let ha1 = if alg.is_session() {
            digest::session_ha1(alg, &base_ha1, &offer.nonce, cnonce)
        } else {
            base_ha1
        };
        let ha2 = self.ha2(alg.base(), method, uri);
        let qop = offer.qop_auth.then_some("auth");
        let response = digest::response(alg, &ha1, &offer.nonce, NC, cnonce, qop, ha2);
        let mut out = String::with_capacity(160 + offer.nonce.len() + offer.realm.len() + response.len());
        out.push_str("Digest username=");
        push_quoted(&mut out, username);
        out.push_str(", realm=");
        push_quoted(&mut out, &offer.realm);
        out.push_str(", nonce=");
        push_quoted(&mut out, &offer.nonce);
        out.push_str(", uri=");
        push_quoted(&mut out, uri);
        out.push_str(", response=\"");
        out.push_str(&response);
        out.push_str("\", algorithm=");
        out.push_str(alg.as_str());
        if offer.qop_auth {
            out.push_str(", cnonce=\"");
            out.push_str(cnonce);
            out.push_str("\", qop=auth, nc=");
            out.push_str(NC);
        }
        if let Some(o) = &offer.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE_401: &str = "SIP/2.0 401 Unauthorized\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKab12.7.1;rport=40000\r\n\
        From: <sip:1000@127.0.0.1>;tag=ab12.7\r\n\
        To: <sip:1000@127.0.0.1>;tag=xyz\r\n\
        Call-ID: ab12-7\r\n\
        CSeq: 1 REGISTER\r\n\
        WWW-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"n0nce\", qop=\"auth\", algorithm=SHA-256\r\n\
        WWW-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"n0nce\", qop=\"auth\", algorithm=MD5\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn reads_a_challenge_like_the_sip_crate_does() {
        let r = parse_response(CHALLENGE_401.as_bytes()).expect("a response");
        assert_eq!(r.code, 401);
        assert_eq!(r.call_id, b"ab12-7");
        assert_eq!(r.cseq, 1);
        let mine: Vec<&str> = r.challenges().collect();
        let msg = sip::Message::parse(CHALLENGE_401.as_bytes().to_vec()).expect("valid SIP");
        let theirs: Vec<&str> = msg.header_values("WWW-Authenticate").collect();
        assert_eq!(mine, theirs);
        assert_eq!(msg.call_id().expect("call-id").as_bytes(), r.call_id);
        let offer = choose(r.challenges()).expect("a usable challenge");
        assert_eq!(offer.algorithm, Algorithm::Md5, "MD5 is preferred when offered");
        assert_eq!(offer.nonce, "n0nce");
        assert!(offer.qop_auth);
    }

    #[test]
    fn compact_names_folds_and_odd_spacing() {
        let text = "SIP/2.0 407 Proxy Authentication Required\r\ni :  cid-42 \r\ncseq:2 REGISTER\r\n\
            proxy-authenticate: Digest realm=\"r\",\r\n nonce=\"abc\", algorithm=SHA-256,\r\n\tqop=\"auth,auth-int\"\r\n\r\n";
        let r = parse_response(text.as_bytes()).expect("a response");
        assert_eq!((r.code, r.call_id, r.cseq), (407, &b"cid-42"[..], 2));
        let offer = choose(r.challenges()).expect("usable");
        assert_eq!(offer.algorithm, Algorithm::Sha256);
        assert_eq!((&*offer.realm, &*offer.nonce, offer.qop_auth), ("r", "abc", true));
        // LF-only line ends work too.
        let lf = "SIP/2.0 200 OK\nCall-ID: x-1\nCSeq: 2 REGISTER\n\n";
        let r = parse_response(lf.as_bytes()).expect("a response");
        assert_eq!((r.code, r.call_id, r.cseq), (200, &b"x-1"[..], 2));
    }

    #[test]
    fn rejects_requests_and_incomplete_responses() {
        assert!(parse_response(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n").is_none());
        assert!(parse_response(b"SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\n\r\n").is_none());
        assert!(parse_response(b"SIP/2.0 2x0 OK\r\nCall-ID: a\r\nCSeq: 1 X\r\n\r\n").is_none());
        assert!(parse_response(b"SIP/2.0 2000 OK\r\nCall-ID: a\r\nCSeq: 1 X\r\n\r\n").is_none());
    }

    #[test]
    fn challenge_choice() {
        let only_sess = ["Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=\"auth\""];
        assert_eq!(
            choose(only_sess.into_iter()).map(|o| o.algorithm),
            Some(Algorithm::Md5Sess)
        );
        let auth_int = ["Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""];
        assert!(choose(auth_int.into_iter()).is_none());
        let basic = ["Basic realm=\"r\""];
        assert!(choose(basic.into_iter()).is_none());
        let no_alg = ["Digest realm=\"r\", nonce=\"n\", opaque=\"o\""];
        let o = choose(no_alg.into_iter()).expect("usable");
        assert_eq!(
            (o.algorithm, o.qop_auth, o.opaque.as_deref()),
            (Algorithm::Md5, false, Some("o"))
        );
    }

    /// RFC 2617 §3.5, through the same code path as a REGISTER answer.
    #[test]
    fn rfc2617_vector() {
        let offer = Offer {
            algorithm: Algorithm::Md5,
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            qop_auth: true,
        };
        let mut a = Authenticator::new(1);
        let v = a.authorization(
            &offer,
            0,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
        );
        assert!(v.contains("response=\"6629fae49393a05397450978507c4ef1\""), "{v}");
        // Cached HA1/HA2 give the same answer.
        assert_eq!(
            v,
            a.authorization(
                &offer,
                0,
                "Mufasa",
                "Circle Of Life",
                "GET",
                "/dir/index.html",
                "0a4f113b"
            )
        );
    }

    /// The request parses with the sip crate, and its credentials check out against an HA1
    /// computed from scratch, for both algorithms.
    #[test]
    fn register_with_credentials_verifies() {
        let texts = Texts {
            ruri: "sip:127.0.0.1:5090".into(),
            domain: "127.0.0.1".into(),
            run_id: "ab12".into(),
        };
        let mut a = Authenticator::new(1);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let offer = Offer {
                algorithm: alg,
                realm: "127.0.0.1".into(),
                nonce: "n\"q".into(),
                opaque: None,
                qop_auth: true,
            };
            let auth = a.authorization(&offer, 0, "1000", "pw1000", "REGISTER", &texts.ruri, "c0ffee");
            let auth = format!("Authorization: {auth}");
            let mut out = Vec::new();
            build_register(&mut out, &texts, "127.0.0.1:40000", 1000, 7, 2, Some(&auth));
            let msg = sip::Message::parse(out.clone()).expect("valid SIP");
            assert_eq!(msg.request_uri_str(), Some("sip:127.0.0.1:5090"));
            assert_eq!(msg.call_id().expect("call-id"), "ab12-7");
            assert_eq!(msg.cseq().expect("cseq").seq, 2);
            assert_eq!(msg.header("Contact"), Some("<sip:1000@127.0.0.1:40000>"));
            let via = msg.via().expect("via");
            assert!(via.branch().is_some_and(|b| b.starts_with("z9hG4bK")));
            let creds = msg
                .credentials(sip::HeaderName::Authorization)
                .next()
                .expect("one Authorization")
                .expect("parses");
            let d = creds.digest().expect("digest fields");
            assert_eq!(
                (&*d.username, &*d.nonce, &*d.uri),
                ("1000", "n\"q", "sip:127.0.0.1:5090")
            );
            let ha1 = digest::ha1(alg, "1000", "127.0.0.1", "pw1000");
            let ha2 = digest::ha2(alg, "REGISTER", &d.uri);
            let want = digest::response(alg, &ha1, &d.nonce, NC, "c0ffee", Some("auth"), &ha2);
            assert_eq!(d.response, want);
            assert_eq!(d.algorithm.as_deref(), Some(alg.as_str()));
            // A retransmission is the same bytes.
            let mut again = Vec::new();
            build_register(&mut again, &texts, "127.0.0.1:40000", 1000, 7, 2, Some(&auth));
            assert_eq!(out, again);
        }
    }

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        for n in [0u64, 7, 10, 999, u64::MAX] {
            v.clear();
            push_u64(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
        assert_eq!(flow_number(b"ab12-123", b"ab12-"), Some(123));
        assert_eq!(flow_number(b"ab12-", b"ab12-"), None);
        assert_eq!(flow_number(b"cd34-1", b"ab12-"), None);
        assert_eq!(flow_number(b"ab12-1x", b"ab12-"), None);
    }
}
