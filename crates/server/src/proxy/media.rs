//! Media anchoring: every SDP the proxy forwards is rewritten so that the audio (and any other
//! RTP stream) flows through the relay (RFC 3264 offer/answer seen from the middle, RFC 8866
//! `c=`/`m=`, RFC 3605 `a=rtcp`).
//!
//! Each m-line of a call gets one relay stream: leg A faces the caller, leg B the callee. An SDP
//! from side X tells the relay where X's phone wants its media (its `c=` address and `m=` port:
//! [`MediaControl::set_remote`] on leg X) and goes on to the other side with the relay's address
//! and the port of the *other* leg, which is where the other phone must send. The same rule
//! covers the INVITE offer, 183 early media, every forked answer, re-INVITE and UPDATE from
//! either side, late offers in a 2xx with the answer in the ACK, hold (`c=0.0.0.0` is kept, so
//! the far phone still sees a hold; the relay keeps the last real address) and streams other
//! than audio. Offers also pass the server's codec policy; an offer left with no usable codec
//! gets 488 with a Warning.
//!
//! SRTP with SDES keys (RFC 3711, RFC 4568) is terminated at the relay: an m-line offered as
//! `RTP/SAVP(F)` with an `AES_CM_128_HMAC_SHA1_80` `a=crypto` key gives the relay that key to
//! decrypt what the phone sends, and goes on to the other side as SRTP again, with a key of the
//! relay's own (fresh per stream leg, from the OS generator) in place of the phone's: each leg has
//! its own key, and neither phone ever sees the other's. The answer gets the same treatment, with
//! the offer's tag. A phone that answers an SRTP offer with plain RTP is bridged (SRTP on one leg,
//! RTP on the other). SRTP profiles with no key we understand (DTLS-SRTP, other suites) pass
//! through untouched, relayed as opaque packets.
//!
//! SDES keys are only as secret as the signalling that carries them (RFC 4568 §8.3): the relay
//! takes keys from, and sends keys toward, only a phone whose signalling leg is TLS (or WSS);
//! the proxy says which legs are ([`CallMedia::signalling`]) before each SDP.
//!
//! - A request whose offer demands SRTP with `a=crypto` keys (an `RTP/SAVP(F)` m-line; INVITE,
//!   re-INVITE, UPDATE) and came over UDP or TCP is refused: 488 with
//!   `Warning: 399 <domain> "SRTP keys need TLS signalling"` ([`MediaFailure::InsecureKeys`]).
//!   The keys were already seen on the wire, and SRTP that anyone on the path can decrypt would
//!   only look private. Best-effort SRTP over UDP/TCP (`a=crypto` in an `RTP/AVP` m-line, many
//!   softphones' default) loses its keys and goes on as the plain RTP it also offers.
//! - A response (an answer, or a late offer in a 2xx) or an ACK cannot be refused. Keys in one
//!   that came without TLS are ignored and that leg is treated as plain RTP: its `a=crypto`
//!   lines are dropped and an SDES-keyed `RTP/SAVP` goes on as `RTP/AVP`, so the other phone
//!   gets plain RTP, or SRTP with our key bridged at the relay if its own leg is TLS (logged at
//!   debug). The phone that sent the keys will not understand the relay's plain RTP: the call
//!   fails or is silent toward it, which is what its misconfiguration deserves rather than
//!   encryption with a key that went out in clear. Such an answer only happens when a phone
//!   answers our `RTP/AVP` offer with `RTP/SAVP` (which RFC 3264 does not allow anyway).
//! - SRTP with our key goes toward a phone only over TLS signalling: an SRTP offer from a TLS
//!   phone to one reached over UDP or TCP arrives there as plain `RTP/AVP` without `a=crypto`,
//!   and the relay bridges SRTP on leg A to RTP on leg B. No `a=crypto` line of any other kind
//!   (a suite we do not terminate, best-effort SDES in `RTP/AVP`) goes toward such a phone.
//! - A forked INVITE is anchored once, with SRTP toward the callee when any branch's phone is
//!   on TLS; every branch without TLS gets that offer without keys ([`without_keys`]). The branch
//!   that answers sets leg B: a plain answer is bridged like any plain answer to SRTP. Deciding
//!   once per call (SRTP only if every branch is on TLS) would have cost a user's TLS phone its
//!   SRTP (or, with SRTP mandatory, the call) whenever the same user also has a UDP phone; a
//!   relay stream per branch would have cost ports and a rework of the call's media state.
//! - A callee reached through another node of the platform (an internal hop over UDP) counts as
//!   its phone's own transport there: the hop is inside the platform.
//!
//! Without a relay the proxy leaves SDP alone: the phones' SRTP is then their own business.
//!
//! The relay itself sits behind [`MediaControl`], so the proxy stays testable without sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

pub use media::Leg;
use sdp::{CodecPolicy, Sdp};
use tracing::debug;

/// A stream handle and its two RTP ports (leg A's, leg B's).
pub type Anchored = (u64, (u16, u16));

/// What the proxy needs from a media relay.
pub trait MediaControl: Send {
    /// The address put into rewritten SDP.
    fn address(&self) -> IpAddr;
    /// Allocates one stream (two legs of RTP+RTCP ports) for `call`.
    fn allocate(&mut self, call: &str) -> Result<Anchored, String>;
    /// Where leg `leg`'s phone wants its media, per its SDP.
    fn set_remote(&mut self, stream: u64, leg: Leg, rtp: SocketAddr, rtcp: Option<SocketAddr>);
    /// The SRTP keys of one leg: `rx` its phone's (to decrypt), `tx` ours (to encrypt toward it);
    /// `None` for plain RTP.
    fn set_srtp(&mut self, stream: u64, leg: Leg, rx: Option<media::SrtpKey>, tx: Option<media::SrtpKey>);
    /// Frees every stream of `call`; its ports go back to the pool.
    fn release_call(&mut self, call: &str);
    /// Counters of a stream.
    fn stats(&self, stream: u64) -> Option<media::StreamStats>;
    /// Calls whose media stopped for the media timeout.
    fn timed_out(&mut self) -> Vec<String>;
}

/// [`MediaControl`] over the real relay.
pub struct RelayControl {
    relay: media::MediaRelay,
    ids: HashMap<u64, media::StreamId>,
    by_call: HashMap<String, Vec<u64>>,
    next: u64,
}

impl RelayControl {
    pub fn new(relay: media::MediaRelay) -> Self {
        RelayControl {
            relay,
            ids: HashMap::new(),
            by_call: HashMap::new(),
            next: 0,
        }
    }

    pub fn relay(&self) -> &media::MediaRelay {
        &self.relay
    }
}

impl MediaControl for RelayControl {
    fn address(&self) -> IpAddr {
        self.relay.address()
    }

    fn allocate(&mut self, call: &str) -> Result<Anchored, String> {
        let id = self.relay.allocate(call).map_err(|e| e.to_string())?;
        let ports = self.relay.ports(id).ok_or("the stream vanished")?;
        self.next += 1;
        self.ids.insert(self.next, id);
        self.by_call.entry(call.to_owned()).or_default().push(self.next);
        Ok((self.next, ports))
    }

    fn set_remote(&mut self, stream: u64, leg: Leg, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        if let Some(id) = self.ids.get(&stream)
            && let Err(e) = self.relay.set_remote(*id, leg, rtp, rtcp)
        {
            debug!(error = %e, %rtp, "media remote refused");
        }
    }

    fn set_srtp(&mut self, stream: u64, leg: Leg, rx: Option<media::SrtpKey>, tx: Option<media::SrtpKey>) {
        if let Some(id) = self.ids.get(&stream)
            && let Err(e) = self.relay.set_srtp(*id, leg, rx, tx)
        {
            debug!(error = %e, "SRTP keys refused");
        }
    }

    fn release_call(&mut self, call: &str) {
        self.relay.release_call(call);
        for handle in self.by_call.remove(call).unwrap_or_default() {
            self.ids.remove(&handle);
        }
    }

    fn stats(&self, stream: u64) -> Option<media::StreamStats> {
        self.ids.get(&stream).and_then(|id| self.relay.stats(*id))
    }

    fn timed_out(&mut self) -> Vec<String> {
        self.relay.timed_out()
    }
}

/// The streams of one call, by m-line index, and the codec each side chose.
#[derive(Debug, Default, Clone)]
pub struct CallMedia {
    pub streams: Vec<Option<Anchored>>,
    /// The first codec of the first audio stream in the latest SDP from each side (A, B).
    pub codecs: [Option<String>; 2],
    /// The last offer as forwarded before the address rewrite, to check its answer against.
    offer: Option<(Leg, Sdp)>,
    /// SRTP state per m-line.
    srtp: Vec<StreamSrtp>,
    /// Another node anchors this call's media: SDP passes through untouched.
    pub passthrough: bool,
    /// Whether each leg's phone signals over TLS (or WSS), A then B, as the proxy sets it before
    /// each SDP: SDES keys are taken only from, and sent only toward, such a leg.
    pub signalling: [bool; 2],
}

/// The SRTP keys of one stream, per leg (A, B).
#[derive(Clone, Default)]
struct StreamSrtp {
    /// The key the leg's phone encrypts with (from its SDP).
    rx: [Option<media::SrtpKey>; 2],
    /// Our key toward the leg's phone, made once per stream leg.
    ours: [Option<media::SrtpKey>; 2],
    /// Whether the leg's phone talks SRTP with the relay.
    secure: [bool; 2],
    /// The tag of the phone's offered key we took (an answer must name it, RFC 4568 §7.1.3).
    tag: [u32; 2],
}

impl std::fmt::Debug for StreamSrtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("StreamSrtp")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

/// `RTP/SAVP` for `RTP/AVP` (and `…/SAVPF` for `…/AVPF`) when `secure`, the reverse when not.
fn srtp_proto(proto: &str, secure: bool) -> String {
    let (head, last) = proto.rsplit_once('/').unwrap_or(("RTP", proto));
    let feedback = last.to_ascii_uppercase().ends_with('F');
    let profile = match (secure, feedback) {
        (true, true) => "SAVPF",
        (true, false) => "SAVP",
        (false, true) => "AVPF",
        (false, false) => "AVP",
    };
    format!("{head}/{profile}")
}

/// Whether a media section carries SDES keys (`a=crypto`, whatever the suite).
fn has_crypto(m: &sdp::Media<'_>) -> bool {
    m.attributes().any(|(n, _)| n.eq_ignore_ascii_case("crypto"))
}

/// SRTP for one RTP m-line of an SDP from `from`: learns the phone's key, tells the relay the
/// keys of both legs, and puts our key (or plain RTP) into the section going to the other side.
/// Keys are taken from, and sent toward, a leg only when `signalling` says it is on TLS.
fn anchor_srtp(
    ctl: &mut dyn MediaControl,
    state: &mut StreamSrtp,
    handle: u64,
    m: &mut sdp::MediaMut<'_>,
    from: Leg,
    offer: bool,
    signalling: [bool; 2],
) -> Result<(), MediaFailure> {
    let (x, y) = match from {
        Leg::A => (0, 1),
        Leg::B => (1, 0),
    };
    let (sdes, keyed) = {
        let media = m.as_media();
        (media.is_srtp() && has_crypto(&media), has_crypto(&media))
    };
    let phone_key = if sdes && signalling[x] {
        m.as_media().crypto().into_iter().next()
    } else {
        None
    };
    // Keys that came over signalling without TLS are not taken: that leg is plain RTP.
    let in_clear = sdes && !signalling[x];
    if in_clear {
        debug!(
            ?from,
            offer, "SDES keys over signalling without TLS ignored: plain RTP on that leg"
        );
    }
    if phone_key.is_none() && !in_clear && !state.secure[y] && !state.secure[x] {
        // Plain RTP, or SRTP keyed some other way: relayed as it is. But no key goes on unless
        // both legs are on TLS.
        if keyed && !(signalling[x] && signalling[y]) {
            debug!(?from, "a=crypto not passed on: a leg without TLS");
            m.remove_attribute("crypto");
        }
        return Ok(());
    }
    state.secure[x] = phone_key.is_some();
    state.rx[x] = phone_key.as_ref().map(|c| c.key_salt);
    if offer {
        state.secure[y] = phone_key.is_some();
        if let Some(c) = &phone_key {
            state.tag[x] = c.tag;
        }
    }
    // SRTP toward the other phone only over TLS signalling (RFC 4568 §8.3): otherwise plain
    // RTP there, bridged at the relay.
    state.secure[y] &= signalling[y];
    let toward_y = state.secure[y];
    if toward_y && state.ours[y].is_none() {
        state.ours[y] = Some(media::random_srtp_key().map_err(|_| MediaFailure::NoPorts)?);
    }
    for (leg, i) in [(Leg::A, 0), (Leg::B, 1)] {
        let tx = if state.secure[i] { state.ours[i] } else { None };
        ctl.set_srtp(handle, leg, state.rx[i], tx);
    }
    m.remove_attribute("crypto");
    let proto = srtp_proto(m.proto(), toward_y);
    m.set_proto(&proto);
    if let Some(key_salt) = state.ours[y].filter(|_| toward_y) {
        let tag = if offer { 1 } else { state.tag[y] };
        let crypto = sdp::Crypto { tag, key_salt };
        if let Err(e) = m.push_attribute("crypto", Some(&crypto.value())) {
            debug!(?e, "a=crypto refused");
        }
    }
    Ok(())
}

/// Whether an SDP body carries SDES keys (`a=crypto`) in a media section that is not rejected.
pub fn has_keys(body: &[u8]) -> bool {
    Sdp::parse(body).is_ok_and(|sdp| sdp.media().any(|m| !m.is_rejected() && has_crypto(&m)))
}

/// Whether an SDP offers SRTP it cannot do without: an `RTP/SAVP(F)` m-line with SDES keys
/// (best-effort SRTP puts `a=crypto` in an `RTP/AVP` m-line instead, and accepts plain RTP).
pub fn has_mandatory_keys(body: &[u8]) -> bool {
    Sdp::parse(body).is_ok_and(|sdp| sdp.media().any(|m| !m.is_rejected() && m.is_srtp() && has_crypto(&m)))
}

/// `body`, an offer [`anchor`] rewrote for the callee, as it goes to a branch whose phone is not
/// on TLS: without `a=crypto` lines, and with the SDES-keyed sections as plain RTP (the relay
/// bridges them if that phone answers). `None` when there is no key to take out.
pub fn without_keys(body: &[u8]) -> Option<Vec<u8>> {
    let mut sdp = Sdp::parse(body).ok()?;
    let mut changed = false;
    for mut m in sdp.media_mut() {
        let srtp = m.as_media().is_srtp();
        if m.remove_attribute("crypto") > 0 {
            changed = true;
            if srtp {
                let proto = srtp_proto(m.proto(), false);
                m.set_proto(&proto);
            }
        }
    }
    changed.then(|| sdp.to_bytes())
}

/// Why an SDP could not be anchored; each maps to a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaFailure {
    /// 400: the body is not SDP we can read.
    BadSdp(String),
    /// 488 with this Warning value: no codec of the offer is allowed.
    NoCodec(String),
    /// 503: the relay has no free ports.
    NoPorts,
    /// 488 with this Warning value: SDES keys offered over signalling without TLS.
    InsecureKeys(String),
}

/// The side that did not send.
fn other(leg: Leg) -> Leg {
    match leg {
        Leg::A => Leg::B,
        Leg::B => Leg::A,
    }
}

/// Rewrites `body`, an SDP sent by side `from` (an offer when `offer`), for the other side, and
/// tells the relay where `from`'s phone listens. `warn_host` names this server in a Warning.
#[allow(clippy::too_many_arguments)]
pub fn anchor(
    ctl: &mut dyn MediaControl,
    policy: &CodecPolicy,
    call_id: &str,
    media: &mut CallMedia,
    body: &[u8],
    from: Leg,
    offer: bool,
    warn_host: &str,
) -> Result<Vec<u8>, MediaFailure> {
    let mut sdp = Sdp::parse(body).map_err(|e| MediaFailure::BadSdp(e.to_string()))?;
    if offer {
        policy
            .filter_offer(&mut sdp)
            .map_err(|e| MediaFailure::NoCodec(e.warning(warn_host)))?;
        media.offer = Some((from, sdp.clone()));
    } else if let Some((offerer, o)) = media.offer.take().filter(|(l, _)| *l == other(from))
        && let Err(e) = sdp::check_answer(&o, &sdp)
    {
        // Forwarded anyway: the phones may still agree; the mismatch is for the operator.
        tracing::warn!(call_id, error = %e, ?offerer, "SDP answer does not match its offer");
    }
    let side = match from {
        Leg::A => 0,
        Leg::B => 1,
    };
    if let Some(codec) = sdp
        .media()
        .find(|m| m.kind() == "audio" && !m.is_rejected())
        .and_then(|m| m.codecs().into_iter().find(|c| !c.is_auxiliary()))
    {
        media.codecs[side] = Some(codec.name);
    }
    for (i, mut m) in sdp.media_mut().enumerate() {
        if media.streams.len() <= i {
            media.streams.resize(i + 1, None);
        }
        if media.srtp.len() <= i {
            media.srtp.resize(i + 1, StreamSrtp::default());
        }
        if m.as_media().is_rejected() || !m.as_media().is_rtp() {
            continue;
        }
        let Some(ip) = m.as_media().connection_addr() else {
            continue;
        };
        let (handle, ports) = match media.streams[i] {
            Some(s) => s,
            None => {
                let s = ctl.allocate(call_id).map_err(|_| MediaFailure::NoPorts)?;
                media.streams[i] = Some(s);
                s
            }
        };
        if !ip.is_unspecified() {
            let rtp = SocketAddr::new(ip, m.as_media().port());
            let rtcp = m.as_media().rtcp().map(|(p, a)| SocketAddr::new(a.unwrap_or(ip), p));
            ctl.set_remote(handle, from, rtp, rtcp);
        }
        anchor_srtp(ctl, &mut media.srtp[i], handle, &mut m, from, offer, media.signalling)?;
        m.set_port(match from {
            Leg::A => ports.1,
            Leg::B => ports.0,
        });
        m.remove_rtcp();
    }
    sdp.set_connection(ctl.address());
    Ok(sdp.to_bytes())
}

/// Whether a message carries an SDP body.
pub fn has_sdp(msg: &sip::Message) -> bool {
    !msg.body().is_empty()
        && msg.content_type().is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay that only records what it is told.
    #[derive(Default)]
    pub struct FakeRelay {
        pub next_port: u16,
        pub remotes: Vec<(u64, Leg, SocketAddr)>,
        pub released: Vec<String>,
        pub srtp: Vec<(u64, Leg, Option<media::SrtpKey>, Option<media::SrtpKey>)>,
    }

    impl MediaControl for FakeRelay {
        fn address(&self) -> IpAddr {
            "203.0.113.1".parse().expect("ip")
        }
        fn allocate(&mut self, _call: &str) -> Result<Anchored, String> {
            self.next_port += 4;
            let a = 20_000 + self.next_port;
            Ok((u64::from(self.next_port), (a, a + 2)))
        }
        fn set_remote(&mut self, stream: u64, leg: Leg, rtp: SocketAddr, _rtcp: Option<SocketAddr>) {
            self.remotes.push((stream, leg, rtp));
        }
        fn set_srtp(&mut self, stream: u64, leg: Leg, rx: Option<media::SrtpKey>, tx: Option<media::SrtpKey>) {
            self.srtp.push((stream, leg, rx, tx));
        }
        fn release_call(&mut self, call: &str) {
            self.released.push(call.to_owned());
        }
        fn stats(&self, _stream: u64) -> Option<media::StreamStats> {
            None
        }
        fn timed_out(&mut self) -> Vec<String> {
            Vec::new()
        }
    }

    /// A call whose phones both signal over TLS.
    fn tls_call() -> CallMedia {
        CallMedia {
            signalling: [true, true],
            ..CallMedia::default()
        }
    }

    const OFFER: &[u8] = b"v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 18 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:4001\r\n\
        m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    #[test]
    fn offer_and_answer_go_through_the_relay() {
        let mut relay = FakeRelay::default();
        let mut media = CallMedia::default();
        let policy = CodecPolicy::default();
        let out = anchor(&mut relay, &policy, "c1", &mut media, OFFER, Leg::A, true, "sb").expect("offer");
        let offer = Sdp::parse(&out).expect("sdp");
        assert_eq!(offer.connection_addr(), Some("203.0.113.1".parse().expect("ip")));
        let audio = offer.media().next().expect("audio");
        assert_eq!(audio.formats(), ["0", "101"], "G.729 is not allowed by default");
        assert_eq!(audio.port(), 20_006, "the callee sends to leg B");
        assert_eq!(audio.rtcp(), None, "RTCP is on port + 1 of the relay");
        assert!(
            offer.media().nth(1).expect("video").is_rejected(),
            "H.264 is not allowed"
        );
        assert_eq!(relay.remotes, [(4, Leg::A, "10.0.0.5:4000".parse().expect("addr"))]);

        let answer = b"v=0\r\no=bob 2 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
            m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\nm=video 0 RTP/AVP 96\r\n";
        let out = anchor(&mut relay, &policy, "c1", &mut media, answer, Leg::B, false, "sb").expect("answer");
        let answer = Sdp::parse(&out).expect("sdp");
        assert_eq!(
            answer.media().next().expect("audio").port(),
            20_004,
            "the caller sends to leg A"
        );
        assert_eq!(relay.remotes[1], (4, Leg::B, "192.0.2.20:6000".parse().expect("addr")));
        assert_eq!(media.codecs, [Some("PCMU".into()), Some("PCMU".into())]);

        // Hold from the callee: c=0.0.0.0 stays, the relay keeps the last real address.
        let hold = b"v=0\r\no=bob 2 3 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
            m=audio 6000 RTP/AVP 0\r\na=sendonly\r\nm=video 0 RTP/AVP 96\r\n";
        let out = anchor(&mut relay, &policy, "c1", &mut media, hold, Leg::B, true, "sb").expect("hold");
        let held = Sdp::parse(&out).expect("sdp");
        assert!(held.is_on_hold());
        assert_eq!(relay.remotes.len(), 2);
    }

    #[test]
    fn nothing_allowed_is_488() {
        let mut relay = FakeRelay::default();
        let offer =
            b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n";
        let r = anchor(
            &mut relay,
            &CodecPolicy::default(),
            "c1",
            &mut CallMedia::default(),
            offer,
            Leg::A,
            true,
            "sb",
        );
        assert!(matches!(r, Err(MediaFailure::NoCodec(w)) if w.starts_with("305 sb ")));
        assert!(matches!(
            anchor(
                &mut relay,
                &CodecPolicy::default(),
                "c1",
                &mut CallMedia::default(),
                b"nonsense",
                Leg::A,
                true,
                "sb"
            ),
            Err(MediaFailure::BadSdp(_))
        ));
    }

    #[test]
    fn srtp_is_terminated_with_a_key_per_leg() {
        let mut relay = FakeRelay::default();
        let mut media = tls_call();
        let policy = CodecPolicy::default();
        let alice_key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let offer = format!(
            "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
             m=audio 4000 RTP/SAVP 0\r\na=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{alice_key}\r\n\
             a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{alice_key}\r\n"
        );
        let alice = sdp::Crypto::parse(&format!("7 AES_CM_128_HMAC_SHA1_80 inline:{alice_key}")).expect("key");
        let out = anchor(
            &mut relay,
            &policy,
            "c1",
            &mut media,
            offer.as_bytes(),
            Leg::A,
            true,
            "sb",
        )
        .expect("offer");
        let to_bob = Sdp::parse(&out).expect("sdp");
        let m = to_bob.media().next().expect("audio");
        assert_eq!(m.proto(), "RTP/SAVP");
        let ours_b = m.crypto();
        assert_eq!(
            ours_b.len(),
            1,
            "only our key goes on: {}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(ours_b[0].tag, 1);
        assert_ne!(ours_b[0].key_salt, alice.key_salt, "Bob never sees Alice's key");
        assert!(!String::from_utf8_lossy(&out).contains(alice_key));
        assert_eq!(relay.srtp.last(), Some(&(4, Leg::B, None, Some(ours_b[0].key_salt))));
        assert_eq!(
            relay.srtp[relay.srtp.len() - 2],
            (4, Leg::A, Some(alice.key_salt), None)
        );

        // Bob answers with his key (tag 1, ours); Alice gets our key for leg A under her tag 7.
        let bob_key = sdp::Crypto {
            tag: 1,
            key_salt: [9; 30],
        };
        let answer = format!(
            "v=0\r\no=bob 2 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
             m=audio 6000 RTP/SAVP 0\r\na=crypto:{}\r\n",
            bob_key.value()
        );
        let out = anchor(
            &mut relay,
            &policy,
            "c1",
            &mut media,
            answer.as_bytes(),
            Leg::B,
            false,
            "sb",
        )
        .expect("answer");
        let to_alice = Sdp::parse(&out).expect("sdp");
        let m = to_alice.media().next().expect("audio");
        assert_eq!(m.proto(), "RTP/SAVP");
        let ours_a = m.crypto();
        assert_eq!(ours_a.len(), 1);
        assert_eq!(ours_a[0].tag, 7, "the answer names the offer's tag");
        assert_ne!(ours_a[0].key_salt, ours_b[0].key_salt);
        assert_ne!(ours_a[0].key_salt, bob_key.key_salt);
        let n = relay.srtp.len();
        assert_eq!(
            relay.srtp[n - 2..],
            [
                (4, Leg::A, Some(alice.key_salt), Some(ours_a[0].key_salt)),
                (4, Leg::B, Some(bob_key.key_salt), Some(ours_b[0].key_salt)),
            ]
        );

        // A plain offer stays plain and never touches SRTP.
        let mut relay = FakeRelay::default();
        anchor(
            &mut relay,
            &policy,
            "c2",
            &mut CallMedia::default(),
            OFFER,
            Leg::A,
            true,
            "sb",
        )
        .expect("offer");
        assert!(relay.srtp.is_empty());
    }

    #[test]
    fn a_plain_answer_to_srtp_is_bridged() {
        let mut relay = FakeRelay::default();
        let mut media = tls_call();
        let policy = CodecPolicy::default();
        let offer = b"v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
            m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";
        anchor(&mut relay, &policy, "c1", &mut media, offer, Leg::A, true, "sb").expect("offer");
        let answer = b"v=0\r\no=bob 2 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
            m=audio 6000 RTP/AVP 0\r\n";
        let out = anchor(&mut relay, &policy, "c1", &mut media, answer, Leg::B, false, "sb").expect("answer");
        let to_alice = Sdp::parse(&out).expect("sdp");
        let m = to_alice.media().next().expect("audio");
        assert_eq!(m.proto(), "RTP/SAVP", "Alice still gets SRTP");
        assert_eq!(m.crypto().len(), 1);
        let n = relay.srtp.len();
        assert_eq!(relay.srtp[n - 1].1, Leg::B);
        assert_eq!(
            (relay.srtp[n - 1].2, relay.srtp[n - 1].3),
            (None, None),
            "Bob's leg is plain"
        );
        assert!(relay.srtp[n - 2].2.is_some() && relay.srtp[n - 2].3.is_some());
    }

    #[test]
    fn keys_go_only_where_signalling_is_tls() {
        let policy = CodecPolicy::default();
        let alice_key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let offer = format!(
            "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
             m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{alice_key}\r\n"
        );
        // Alice on TLS, Bob not: Bob gets plain RTP, the relay decrypts leg A only.
        let mut relay = FakeRelay::default();
        let mut media = CallMedia {
            signalling: [true, false],
            ..CallMedia::default()
        };
        let out = anchor(
            &mut relay,
            &policy,
            "c1",
            &mut media,
            offer.as_bytes(),
            Leg::A,
            true,
            "sb",
        )
        .expect("offer");
        let to_bob = Sdp::parse(&out).expect("sdp");
        let m = to_bob.media().next().expect("audio");
        assert_eq!(m.proto(), "RTP/AVP");
        assert!(!String::from_utf8_lossy(&out).contains("a=crypto"));
        let alice = sdp::Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{alice_key}")).expect("key");
        assert_eq!(
            relay.srtp,
            [(4, Leg::A, Some(alice.key_salt), None), (4, Leg::B, None, None)]
        );
        // Bob answers with a key anyway, over UDP: ignored, his leg stays plain, and Alice
        // gets SRTP with our key (never Bob's).
        let answer = b"v=0\r\no=bob 2 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
            m=audio 6000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk\r\n";
        let out = anchor(&mut relay, &policy, "c1", &mut media, answer, Leg::B, false, "sb").expect("answer");
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(!text.contains("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"), "{text}");
        let m = Sdp::parse(&out)
            .expect("sdp")
            .media()
            .next()
            .map(|m| (m.proto().to_owned(), m.crypto()));
        let (proto, keys) = m.expect("audio");
        assert_eq!(proto, "RTP/SAVP");
        assert_eq!(keys.len(), 1);
        let n = relay.srtp.len();
        assert_eq!(
            relay.srtp[n - 2..],
            [
                (4, Leg::A, Some(alice.key_salt), Some(keys[0].key_salt)),
                (4, Leg::B, None, None)
            ]
        );

        // Best-effort SDES (RTP/AVP with a=crypto) is relayed as it is between TLS phones, but
        // its key never goes toward a phone without TLS.
        let best_effort = offer.replace("RTP/SAVP", "RTP/AVP");
        for (signalling, kept) in [([true, true], true), ([true, false], false)] {
            let mut media = CallMedia {
                signalling,
                ..CallMedia::default()
            };
            let out = anchor(
                &mut FakeRelay::default(),
                &policy,
                "c2",
                &mut media,
                best_effort.as_bytes(),
                Leg::A,
                true,
                "sb",
            )
            .expect("offer");
            assert_eq!(
                String::from_utf8_lossy(&out).contains(alice_key),
                kept,
                "{signalling:?}"
            );
        }
        assert!(has_keys(best_effort.as_bytes()) && has_keys(offer.as_bytes()) && !has_keys(OFFER));

        // A forked offer, anchored with SRTP toward B, loses its keys for a branch without TLS.
        let mut media = tls_call();
        let out = anchor(
            &mut FakeRelay::default(),
            &policy,
            "c3",
            &mut media,
            offer.as_bytes(),
            Leg::A,
            true,
            "sb",
        )
        .expect("offer");
        let plain = without_keys(&out).expect("keys to take out");
        let m = Sdp::parse(&plain).expect("sdp");
        let m = m.media().next().expect("audio");
        assert_eq!((m.proto(), m.crypto().len()), ("RTP/AVP", 0));
        assert!(!String::from_utf8_lossy(&plain).contains("a=crypto"));
        assert_eq!(without_keys(OFFER), None);
    }
}
