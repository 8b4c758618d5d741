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
}
