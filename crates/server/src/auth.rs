//! Digest authentication of requests (RFC 3261 §22, RFC 7616 §3.3–§3.5, RFC 8760), shared by the
//! registrar (401/WWW-Authenticate) and the proxy (407/Proxy-Authenticate). Sans-IO: the caller
//! passes the time and a lookup of the subscriber's HA1.
//!
//! - Challenges offer MD5 and SHA-256 (RFC 8760), both with `qop="auth"`; MD5 comes first
//!   unless SHA-256 is preferred (see [`DigestAuth::prefer_sha256`]).
//! - Nonces are stateless: the issue time, a per-challenge counter (so no two challenges share
//!   a nonce, and one phone's `nc` never collides with another's), and an HMAC-SHA256 over them,
//!   the client's address and the realm with a server secret. A nonce with a valid HMAC but past
//!   its lifetime earns `stale=true`, so the phone retries with the same password without asking
//!   its user.
//! - A nonce is bound to the address it was issued to: the IPv4 address, or the IPv6 /64 (what
//!   the brute-force defence counts and bans by, `guard::bans::source_key`). Presented from
//!   elsewhere it is not a nonce of ours, and the password is not looked at: so a guess can only
//!   be charged to an address that received the challenge, and an attacker who spoofs a
//!   victim's source address over UDP (with a nonce obtained from its own) cannot get the victim
//!   banned. Only someone who sees the victim's own challenges could still do that.
//! - A well-formed nonce whose HMAC does not hold for this address is answered `stale=true`
//!   with a fresh nonce: the usual cause is a phone whose NAT address changed since its last
//!   challenge, and `stale=true` makes it retry at once without asking its user for a password
//!   (RFC 7616 §3.3 reserves `stale` for a nonce that was valid with a right response, but the
//!   answer must not depend on the password here: checking it against a nonce that is not bound
//!   to the sender would be a guess that counts nowhere). A forged nonce gets the same answer,
//!   which tells its sender nothing it did not know. A malformed nonce gets `stale=false`.
//! - Each nonce's highest `nc` is remembered until the nonce expires; a repeated or lower `nc`
//!   is a replay and is challenged again.
//! - An unknown user gets exactly the challenge a wrong password gets: answers never tell which
//!   extensions exist. The work is the same too: an unknown user's response is compared with a
//!   hash made from a dummy HA1, so the answer does not come back measurably sooner.
//! - The username of each password guess (credentials whose response was checked and was wrong,
//!   or named an unknown user, with a nonce issued to the sender's address) is kept for the
//!   brute-force defence ([`DigestAuth::take_guess`]); refusals that say nothing about the
//!   password (a nonce that is not ours or was issued to another address, a replayed `nc`, an
//!   algorithm not offered) are not guesses: a spoofed packet cannot make one.

use std::collections::HashMap;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip::digest::{Algorithm, constant_time_eq, ha2, response};
use sip::headers::DigestCredentials;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of HMAC kept in a nonce (128 bits).
const MAC_LEN: usize = 16;

/// What a nonce presented with credentials turned out to be.
enum NonceCheck {
    /// Ours, for this realm and this client address: its issue time and node tag.
    Ours { issued: u64, tag: u32 },
    /// Shaped like ours, but its HMAC does not hold here: issued to another address (or with
    /// another secret or realm, or forged).
    Elsewhere,
    /// Not a nonce we could have made.
    Malformed,
}

/// The bytes of a client address a nonce is bound to: a family byte, then the IPv4 address (an
/// IPv4-mapped IPv6 address counts as IPv4) or the IPv6 /64 padded with zeros. The same key
/// the brute-force defence counts by, so a phone rotating addresses inside its /64 keeps its
/// nonce.
fn client_scope(client: IpAddr) -> [u8; 17] {
    let mut b = [0u8; 17];
    match crate::guard::bans::source_key(client).0 {
        IpAddr::V4(v4) => {
            b[0] = 4;
            b[1..5].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            b[0] = 6;
            b[1..].copy_from_slice(&v6.octets());
        }
    }
    b
}

/// The result of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials are right; `username` is the authenticated user.
    Authenticated { username: String },
    /// Answer 401/407 with a fresh challenge (`stale` when only the nonce had expired, or was
    /// issued to another address).
    Challenge { stale: bool },
    /// Answer 400: the credentials are malformed in a way a retry will not fix.
    BadRequest(&'static str),
}

pub struct DigestAuth {
    /// HMAC-SHA-256 keyed with the server secret, cloned for each use (keying costs two
    /// compressions; a clone is a copy).
    keyed: Option<HmacSha256>,
    /// How long a nonce is good for, in seconds.
    lifetime: u64,
    /// Highest `nc` seen per nonce, with the nonce's issue time for expiry.
    nc_seen: HashMap<String, (u64, u32)>,
    /// Makes every nonce unique.
    counter: u64,
    /// This node's tag in the top 32 bits of each nonce's counter (0 on a single server): a
    /// nonce with another node's tag is answered `stale=true` (see `crate::cluster`).
    node_tag: u32,
    /// The algorithms challenged with, most preferred first.
    order: Vec<Algorithm>,
    /// The username of the last [`DigestAuth::verify`] when it refused a password guess.
    guess: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl DigestAuth {
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> Self {
        DigestAuth {
            keyed: HmacSha256::new_from_slice(&secret).ok(),
            lifetime: lifetime_secs,
            nc_seen: HashMap::new(),
            counter: 0,
            node_tag: 0,
            order: vec![Algorithm::Md5, Algorithm::Sha256],
            guess: None,
        }
    }

    /// The username of the last [`DigestAuth::verify`] if it refused a password guess: a
    /// response checked against a password and found wrong, or credentials of an unknown user
    /// (checked against a dummy). `None` for every other outcome. Taking it clears it.
    pub fn take_guess(&mut self) -> Option<String> {
        self.guess.take()
    }

    /// Offer SHA-256 above MD5 (RFC 8760 §2.4 order). Off by default: many deployed phones, and
    /// SIPp 3.6, read only the first challenge and fail unless it is MD5; clients that support
    /// SHA-256 still find it in the second one.
    pub fn prefer_sha256(mut self, yes: bool) -> Self {
        self.order = if yes {
            vec![Algorithm::Sha256, Algorithm::Md5]
        } else {
            vec![Algorithm::Md5, Algorithm::Sha256]
        };
        self
    }

    /// Challenge with exactly these algorithms (MD5 and/or SHA-256), in this order. Some UAs
    /// give up on a 401/407 that holds any algorithm they do not know, even beside one they do
    /// (baresip on libre before 3.12 answers "Function not implemented"); offering MD5 alone
    /// serves them. An empty list keeps the current order.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        let usable: Vec<Algorithm> = algorithms
            .iter()
            .copied()
            .filter(|a| matches!(a, Algorithm::Md5 | Algorithm::Sha256))
            .collect();
        if !usable.is_empty() {
            self.order = usable;
        }
        self
    }

    /// Tags every nonce with this node's tag, and treats a nonce of another node (made with
    /// the same shared secret) as stale, so each node's `nc` table sees only its own nonces.
    pub fn with_node_tag(mut self, tag: u32) -> Self {
        self.node_tag = tag;
        self
    }

    /// A secret from the operating system's random source.
    pub fn random_secret() -> std::io::Result<[u8; 32]> {
        use std::io::Read;
        let mut s = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut s)?;
        Ok(s)
    }

    fn mac(&self, head: &[u8], client: IpAddr, realm: &str) -> Vec<u8> {
        let Some(mut m) = self.keyed.clone() else {
            return Vec::new();
        };
        m.update(head);
        m.update(&client_scope(client));
        m.update(realm.as_bytes());
        m.finalize().into_bytes()[..MAC_LEN].to_vec()
    }

    /// A fresh nonce for `realm` issued at `now` (seconds since the epoch) to `client`: good
    /// only from that address (an IPv6 client: from its /64).
    pub fn nonce(&mut self, realm: &str, now: u64, client: IpAddr) -> String {
        self.counter = self.counter.wrapping_add(1);
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&now.to_be_bytes());
        head[8..12].copy_from_slice(&self.node_tag.to_be_bytes());
        head[12..].copy_from_slice(&(self.counter as u32).to_be_bytes());
        let mut nonce = hex(&head);
        nonce.push_str(&hex(&self.mac(&head, client, realm)));
        nonce
    }

    /// Whether `nonce` was made with this secret for `realm` and `client`, and if so its issue
    /// time and node tag.
    fn check_nonce(&self, nonce: &str, realm: &str, client: IpAddr) -> NonceCheck {
        let Some(raw) = unhex(nonce).filter(|r| r.len() == 16 + MAC_LEN) else {
            return NonceCheck::Malformed;
        };
        let (Ok(issued), Ok(tag)) = (raw[..8].try_into(), raw[8..12].try_into()) else {
            return NonceCheck::Malformed;
        };
        if constant_time_eq(&raw[16..], &self.mac(&raw[..16], client, realm)) {
            NonceCheck::Ours {
                issued: u64::from_be_bytes(issued),
                tag: u32::from_be_bytes(tag),
            }
        } else {
            NonceCheck::Elsewhere
        }
    }

    /// The challenge header values for `client`, one per algorithm in `self.order` (most
    /// preferred first).
    pub fn challenges(&mut self, realm: &str, now: u64, client: IpAddr, stale: bool) -> Vec<String> {
        let nonce = self.nonce(realm, now, client);
        self.order
            .iter()
            .map(|alg| {
                let mut c = String::with_capacity(96 + realm.len() + nonce.len());
                c.push_str("Digest realm=\"");
                c.push_str(realm);
                c.push_str("\", nonce=\"");
                c.push_str(&nonce);
                c.push_str("\", qop=\"auth\", algorithm=");
                c.push_str(alg.as_str());
                if stale {
                    c.push_str(", stale=true");
                }
                c
            })
            .collect()
    }

    /// Checks credentials for a request with this method and Request-URI, sent from `client`
    /// (the packet's source address). `ha1` looks up the stored HA1 of a user for an algorithm.
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &mut self,
        creds: &DigestCredentials<'_>,
        method: &str,
        request_uri: &str,
        realm: &str,
        client: IpAddr,
        now: u64,
        ha1: impl FnOnce(&str, Algorithm) -> Option<String>,
    ) -> AuthOutcome {
        self.guess = None;
        if creds.realm != realm {
            return AuthOutcome::Challenge { stale: false };
        }
        let alg = match creds.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => match Algorithm::parse(a) {
                Some(alg @ (Algorithm::Md5 | Algorithm::Sha256)) => alg,
                _ => return AuthOutcome::Challenge { stale: false },
            },
        };
        let (issued, tag) = match self.check_nonce(&creds.nonce, realm, client) {
            NonceCheck::Ours { issued, tag } => (issued, tag),
            // Not bound to this address (a phone whose NAT address changed, or a spoofed
            // source): a fresh nonce, the password unread, and no guess (see the module top).
            NonceCheck::Elsewhere => return AuthOutcome::Challenge { stale: true },
            NonceCheck::Malformed => return AuthOutcome::Challenge { stale: false },
        };
        if creds.uri != request_uri && !same_host(&creds.uri, request_uri) {
            return AuthOutcome::BadRequest("Digest uri does not match the Request-URI");
        }
        // qop=auth only: it is what we offer, and without it nc-based replay protection is gone.
        let (Some(qop), Some(nc_text), Some(cnonce)) =
            (creds.qop.as_deref(), creds.nc.as_deref(), creds.cnonce.as_deref())
        else {
            return AuthOutcome::Challenge { stale: false };
        };
        if qop != "auth" {
            return AuthOutcome::Challenge { stale: false };
        }
        let Some(nc) = (nc_text.len() == 8)
            .then(|| u32::from_str_radix(nc_text, 16).ok())
            .flatten()
        else {
            return AuthOutcome::BadRequest("Digest nc is not 8 hex digits");
        };
        // An unknown user is checked against a dummy HA1: the same hashing and comparison as a
        // wrong password, so neither the answer nor its timing tells the two apart.
        let (stored, known) = match ha1(&creds.username, alg) {
            Some(h) => (h, true),
            None => ("0".repeat(alg.hex_len()), false),
        };
        let expected = response(
            alg,
            &stored,
            &creds.nonce,
            nc_text,
            cnonce,
            Some(qop),
            &ha2(alg, method, &creds.uri),
        );
        let matches = constant_time_eq(expected.as_bytes(), creds.response.to_ascii_lowercase().as_bytes());
        if !(matches && known) {
            self.guess = Some(creds.username.to_string());
            return AuthOutcome::Challenge { stale: false };
        }
        // Right password: an old nonce only needs a fresh one (RFC 7616 §3.3 stale).
        // So does a nonce another node of the platform issued: its nc table is not ours.
        if now.saturating_sub(issued) > self.lifetime || issued > now + 60 || tag != self.node_tag {
            return AuthOutcome::Challenge { stale: true };
        }
        match self.nc_seen.get(creds.nonce.as_ref()) {
            Some(&(_, last)) if nc <= last => return AuthOutcome::Challenge { stale: false },
            _ => {}
        }
        self.sweep(now);
        self.nc_seen.insert(creds.nonce.to_string(), (issued, nc));
        AuthOutcome::Authenticated {
            username: creds.username.to_string(),
        }
    }

    /// Forgets the nonce counters of expired nonces (they are refused as stale anyway).
    fn sweep(&mut self, now: u64) {
        if self.nc_seen.len() >= 4096 && self.nc_seen.len().is_power_of_two() {
            let lifetime = self.lifetime;
            self.nc_seen
                .retain(|_, (issued, _)| now.saturating_sub(*issued) <= lifetime);
        }
    }

    /// Nonces whose counters are remembered (for tests and metrics).
    pub fn tracked_nonces(&self) -> usize {
        self.nc_seen.len()
    }
}

/// Whether two SIP URIs name the same host and port. Some UAs (SIPp among them, and phones
/// with an outbound proxy) put the server's address rather than the whole Request-URI into the
/// digest `uri`; the response hash covers what they sent, and the nonce and its counter stop a
/// replay, so this host-level match is what RFC 7616 §3.4.6 asks a server to check in practice.
fn same_host(digest_uri: &str, request_uri: &str) -> bool {
    match (sip::Uri::parse(digest_uri), sip::Uri::parse(request_uri)) {
        (Ok(a), Ok(b)) => {
            a.scheme.is_sip_family()
                && a.host_unbracketed().eq_ignore_ascii_case(b.host_unbracketed())
                && a.port.unwrap_or(5060) == b.port.unwrap_or(5060)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use sip::digest::ha1;
    use sip::headers::Credentials;

    use super::*;

    const REALM: &str = "example.com";
    const URI: &str = "sip:example.com";

    fn server() -> DigestAuth {
        DigestAuth::new([7; 32], 300)
    }

    fn store(user: &str, alg: Algorithm) -> Option<String> {
        (user == "1000").then(|| ha1(alg, "1000", REALM, "pw1000"))
    }

    /// What a phone sends back for a challenge nonce.
    fn authorization(user: &str, password: &str, nonce: &str, nc: &str, alg: Algorithm, uri: &str) -> String {
        let h1 = ha1(alg, user, REALM, password);
        let r = response(alg, &h1, nonce, nc, "c0ffee", Some("auth"), &ha2(alg, "REGISTER", uri));
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", \
             algorithm={}, cnonce=\"c0ffee\", qop=auth, nc={nc}",
            alg.as_str()
        )
    }

    /// The phone's address, which the test nonces are issued to.
    fn here() -> IpAddr {
        "192.0.2.7".parse().expect("ip")
    }

    fn check(a: &mut DigestAuth, header: &str, now: u64) -> AuthOutcome {
        check_from(a, header, now, here())
    }

    fn check_from(a: &mut DigestAuth, header: &str, now: u64, client: IpAddr) -> AuthOutcome {
        let c = Credentials::parse(header).expect("credentials");
        let d = c.digest().expect("digest");
        a.verify(&d, "REGISTER", URI, REALM, client, now, store)
    }

    #[test]
    fn challenges_offer_both_algorithms_with_qop_auth() {
        let [first, second] = <[String; 2]>::try_from(server().challenges(REALM, 1000, here(), false)).expect("two");
        assert!(first.contains("algorithm=MD5") && first.contains("qop=\"auth\""));
        assert!(second.contains("algorithm=SHA-256"));
        let [first, second] =
            <[String; 2]>::try_from(server().prefer_sha256(true).challenges(REALM, 1000, here(), false)).expect("two");
        assert!(first.contains("algorithm=SHA-256") && second.contains("algorithm=MD5"));
        assert!(!first.contains("stale"));
        assert!(server().challenges(REALM, 1000, here(), true)[0].ends_with("stale=true"));
        let md5_only = server()
            .with_algorithms(&[Algorithm::Md5])
            .challenges(REALM, 1000, here(), false);
        assert_eq!(md5_only.len(), 1);
        assert!(md5_only[0].ends_with("algorithm=MD5"));
    }

    #[test]
    fn right_password_with_either_algorithm() {
        let mut a = server();
        for (issued, alg) in [(1000, Algorithm::Sha256), (1001, Algorithm::Md5)] {
            let nonce = a.nonce(REALM, issued, here());
            let h = authorization("1000", "pw1000", &nonce, "00000001", alg, URI);
            assert_eq!(
                check(&mut a, &h, 1010),
                AuthOutcome::Authenticated {
                    username: "1000".into()
                },
                "{alg:?}"
            );
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let mut a = server();
        let nonce = a.nonce(REALM, 1000, here());
        let wrong = authorization("1000", "guess", &nonce, "00000001", Algorithm::Md5, URI);
        let unknown = authorization("4242", "guess", &nonce, "00000001", Algorithm::Md5, URI);
        assert_eq!(check(&mut a, &wrong, 1001), AuthOutcome::Challenge { stale: false });
        assert_eq!(check(&mut a, &unknown, 1001), AuthOutcome::Challenge { stale: false });
    }

    #[test]
    fn only_password_guesses_are_kept_for_the_brute_force_defence() {
        let mut a = server();
        let nonce = a.nonce(REALM, 1000, here());
        let wrong = authorization("1000", "guess", &nonce, "00000001", Algorithm::Md5, URI);
        assert_eq!(check(&mut a, &wrong, 1001), AuthOutcome::Challenge { stale: false });
        assert_eq!(a.take_guess().as_deref(), Some("1000"));
        assert_eq!(a.take_guess(), None, "taking it clears it");
        let unknown = authorization("4242", "guess", &nonce, "00000002", Algorithm::Sha256, URI);
        assert_eq!(check(&mut a, &unknown, 1001), AuthOutcome::Challenge { stale: false });
        assert_eq!(a.take_guess().as_deref(), Some("4242"));
        // An unknown user whose response matches the dummy HA1 is still refused.
        let dummy = "0".repeat(32);
        let r = response(
            Algorithm::Md5,
            &dummy,
            &nonce,
            "00000003",
            "c0ffee",
            Some("auth"),
            &ha2(Algorithm::Md5, "REGISTER", URI),
        );
        let forged_user = format!(
            "Digest username=\"4242\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{URI}\", response=\"{r}\", \
             algorithm=MD5, cnonce=\"c0ffee\", qop=auth, nc=00000003"
        );
        assert_eq!(
            check(&mut a, &forged_user, 1001),
            AuthOutcome::Challenge { stale: false }
        );
        assert_eq!(a.take_guess().as_deref(), Some("4242"));

        // Not guesses: a nonce that is not ours, a replayed nc, a stale nonce, success.
        let foreign = DigestAuth::new([9; 32], 300).nonce(REALM, 1000, here());
        let h = authorization("1000", "guess", &foreign, "00000001", Algorithm::Md5, URI);
        assert_eq!(check(&mut a, &h, 1001), AuthOutcome::Challenge { stale: true });
        assert_eq!(a.take_guess(), None);
        let right = authorization("1000", "pw1000", &nonce, "00000009", Algorithm::Md5, URI);
        assert!(matches!(check(&mut a, &right, 1001), AuthOutcome::Authenticated { .. }));
        assert_eq!(a.take_guess(), None);
        assert_eq!(
            check(&mut a, &right, 1002),
            AuthOutcome::Challenge { stale: false },
            "replay"
        );
        assert_eq!(a.take_guess(), None);
        let old = a.nonce(REALM, 1000, here());
        let h = authorization("1000", "pw1000", &old, "00000001", Algorithm::Md5, URI);
        assert_eq!(check(&mut a, &h, 2000), AuthOutcome::Challenge { stale: true });
        assert_eq!(a.take_guess(), None);
        let h = authorization("1000", "guess", &nonce, "00000010", Algorithm::Md5, URI);
        check(&mut a, &h, 1001);
        check(&mut a, &right, 1001);
        assert_eq!(a.take_guess(), None, "each verify starts afresh");
    }

    #[test]
    fn expired_and_foreign_nonces_are_stale_malformed_ones_are_not() {
        let mut a = server();
        let nonce = a.nonce(REALM, 1000, here());
        let h = authorization("1000", "pw1000", &nonce, "00000001", Algorithm::Md5, URI);
        assert_eq!(check(&mut a, &h, 1000 + 301), AuthOutcome::Challenge { stale: true });
        assert_ne!(
            a.nonce(REALM, 1000, here()),
            a.nonce(REALM, 1000, here()),
            "every challenge has its own nonce"
        );
        // Shaped like ours but not made here for this realm: a fresh nonce, whatever the
        // password (which is not looked at: the answer must not tell).
        let forged = DigestAuth::new([9; 32], 300).nonce(REALM, 1000, here());
        let other_realm = a.nonce("other.org", 1000, here());
        for n in [&forged, &other_realm] {
            for pw in ["pw1000", "guess"] {
                let h = authorization("1000", pw, n, "00000001", Algorithm::Md5, URI);
                assert_eq!(check(&mut a, &h, 1001), AuthOutcome::Challenge { stale: true });
                assert_eq!(a.take_guess(), None);
            }
        }
        for malformed in ["", "xyz", &nonce[..nonce.len() - 2]] {
            let h = authorization("1000", "pw1000", malformed, "00000001", Algorithm::Md5, URI);
            assert_eq!(check(&mut a, &h, 1001), AuthOutcome::Challenge { stale: false });
            assert_eq!(a.take_guess(), None);
        }
    }

    #[test]
    fn a_nonce_is_good_only_from_the_address_it_was_issued_to() {
        let mut a = server();
        let x: IpAddr = "198.51.100.7".parse().expect("ip");
        let y: IpAddr = "203.0.113.9".parse().expect("ip");
        let nonce = a.nonce(REALM, 1000, x);
        // From Y, a wrong password is no guess (Y never saw this nonce: the packet may be
        // spoofed), and a right one is told to retry with a fresh nonce (a NAT rebinding).
        for (pw, nc) in [("guess", "00000001"), ("pw1000", "00000002")] {
            let h = authorization("1000", pw, &nonce, nc, Algorithm::Md5, URI);
            assert_eq!(check_from(&mut a, &h, 1001, y), AuthOutcome::Challenge { stale: true });
            assert_eq!(a.take_guess(), None, "{pw} from elsewhere");
        }
        assert_eq!(a.tracked_nonces(), 0, "no nc remembered for it either");
        // From X it works, and a wrong password from X is a guess.
        let h = authorization("1000", "pw1000", &nonce, "00000001", Algorithm::Md5, URI);
        assert!(matches!(
            check_from(&mut a, &h, 1001, x),
            AuthOutcome::Authenticated { .. }
        ));
        let h = authorization("1000", "guess", &nonce, "00000002", Algorithm::Md5, URI);
        assert_eq!(check_from(&mut a, &h, 1001, x), AuthOutcome::Challenge { stale: false });
        assert_eq!(a.take_guess().as_deref(), Some("1000"));
        // IPv4-mapped IPv6 is the same IPv4 address.
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().expect("ip");
        let h = authorization("1000", "pw1000", &nonce, "00000003", Algorithm::Md5, URI);
        assert!(matches!(
            check_from(&mut a, &h, 1001, mapped),
            AuthOutcome::Authenticated { .. }
        ));
    }

    #[test]
    fn an_ipv6_nonce_is_good_across_its_64() {
        let mut a = server();
        let issued_to: IpAddr = "2001:db8:1:2::10".parse().expect("ip");
        let same_64: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().expect("ip");
        let next_64: IpAddr = "2001:db8:1:3::10".parse().expect("ip");
        let nonce = a.nonce(REALM, 1000, issued_to);
        let h = authorization("1000", "pw1000", &nonce, "00000001", Algorithm::Sha256, URI);
        assert!(matches!(
            check_from(&mut a, &h, 1001, same_64),
            AuthOutcome::Authenticated { .. }
        ));
        let h = authorization("1000", "guess", &nonce, "00000002", Algorithm::Sha256, URI);
        assert_eq!(
            check_from(&mut a, &h, 1001, same_64),
            AuthOutcome::Challenge { stale: false }
        );
        assert_eq!(a.take_guess().as_deref(), Some("1000"), "a guess from the same /64");
        let h = authorization("1000", "guess", &nonce, "00000003", Algorithm::Sha256, URI);
        assert_eq!(
            check_from(&mut a, &h, 1001, next_64),
            AuthOutcome::Challenge { stale: true }
        );
        assert_eq!(a.take_guess(), None, "another /64 is another client");
    }

    #[test]
    fn a_nonce_of_another_node_is_stale_there() {
        // Two nodes of a platform share the secret; each has its own tag.
        let mut a = server().with_node_tag(1);
        let mut b = server().with_node_tag(2);
        let nonce = a.nonce(REALM, 1000, here());
        let h = authorization("1000", "pw1000", &nonce, "00000001", Algorithm::Md5, URI);
        assert_eq!(check(&mut b, &h, 1001), AuthOutcome::Challenge { stale: true });
        assert!(
            b.take_guess().is_none(),
            "a right password on the wrong node is no guess"
        );
        assert!(matches!(check(&mut a, &h, 1001), AuthOutcome::Authenticated { .. }));
        let wrong = authorization("1000", "guess", &nonce, "00000002", Algorithm::Md5, URI);
        assert_eq!(check(&mut b, &wrong, 1001), AuthOutcome::Challenge { stale: false });
    }

    #[test]
    fn nonce_count_replays_are_refused() {
        let mut a = server();
        let nonce = a.nonce(REALM, 1000, here());
        let first = authorization("1000", "pw1000", &nonce, "00000001", Algorithm::Sha256, URI);
        assert!(matches!(check(&mut a, &first, 1001), AuthOutcome::Authenticated { .. }));
        assert_eq!(
            check(&mut a, &first, 1002),
            AuthOutcome::Challenge { stale: false },
            "same nc again"
        );
        let second = authorization("1000", "pw1000", &nonce, "00000002", Algorithm::Sha256, URI);
        assert!(matches!(
            check(&mut a, &second, 1003),
            AuthOutcome::Authenticated { .. }
        ));
        assert_eq!(a.tracked_nonces(), 1);
    }

    #[test]
    fn malformed_or_unoffered_credentials() {
        let mut a = server();
        let nonce = a.nonce(REALM, 1000, here());
        let h = authorization(
            "1000",
            "pw1000",
            &nonce,
            "00000001",
            Algorithm::Md5,
            "sip:elsewhere.org",
        );
        assert!(matches!(check(&mut a, &h, 1001), AuthOutcome::BadRequest(_)));
        let h = authorization("1000", "pw1000", &nonce, "1", Algorithm::Md5, URI);
        assert!(matches!(check(&mut a, &h, 1001), AuthOutcome::BadRequest(_)));
        let no_qop =
            format!("Digest username=\"1000\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{URI}\", response=\"00\"");
        assert_eq!(check(&mut a, &no_qop, 1001), AuthOutcome::Challenge { stale: false });
        let sha512 = authorization("1000", "pw1000", &nonce, "00000001", Algorithm::Sha512_256, URI);
        assert_eq!(
            check(&mut a, &sha512, 1001),
            AuthOutcome::Challenge { stale: false },
            "not offered"
        );
    }
}
