//! Where the proxy's own addresses appear and where a request goes next (RFC 3261 §16.4 route
//! information preprocessing, §16.6 steps 4-8, §16.12 loose routing): which URIs name this
//! server, the Record-Route and Via values it inserts, and the transport address of a URI.
//!
//! Only IP-literal hosts are resolved: phones register and dial with addresses, and the
//! registered source path (NAT) is used instead of the Contact whenever one is known. A URI with a
//! host name gets no route (the proxy answers 404 rather than block on DNS under the engine lock).

use std::net::{IpAddr, SocketAddr};

use sip::Uri;
use sip_txn::{Peer, Transport};

/// The addresses this server advertises in Via and Record-Route, per transport.
#[derive(Debug, Clone, Default)]
pub struct LocalAddrs {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    /// The domain, also accepted as "us" in a Route.
    pub domain: String,
}

fn transport_token(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Ws => "ws",
        Transport::Wss => "wss",
    }
}

fn host_port(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
    }
}

impl LocalAddrs {
    pub fn for_transport(&self, t: Transport) -> Option<SocketAddr> {
        match t {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
            Transport::Ws | Transport::Wss => None,
        }
    }

    /// Whether `uri` names this server: one of its addresses (port included, 5060/5061 when
    /// absent), or the domain with no port.
    pub fn is_ours(&self, uri: &Uri<'_>) -> bool {
        if let Some(ip) = uri.host_ip() {
            let default = if matches!(uri.scheme, sip::Scheme::Sips) || uri.transport_param() == Some("tls") {
                5061
            } else {
                5060
            };
            let port = uri.port.unwrap_or(default);
            [self.udp, self.tcp, self.tls]
                .into_iter()
                .flatten()
                .any(|a| a.ip() == ip && a.port() == port)
        } else {
            uri.port.is_none() && uri.host_unbracketed().eq_ignore_ascii_case(&self.domain)
        }
    }

    /// `<sip:IP:PORT;transport=T;lr>` for the side of the server that faces transport `t`.
    pub fn record_route(&self, t: Transport) -> Option<String> {
        let addr = self.for_transport(t)?;
        Some(format!("<sip:{};transport={};lr>", host_port(addr), transport_token(t)))
    }

    /// The Via this server puts on a request it sends over `t`.
    pub fn via(&self, t: Transport, branch: &str) -> Option<String> {
        let addr = self.for_transport(t)?;
        Some(format!(
            "SIP/2.0/{} {};branch={branch};rport",
            t.as_str(),
            host_port(addr)
        ))
    }
}

/// The transport and address a SIP URI points at, when its host is an IP literal.
pub fn uri_target(uri: &Uri<'_>) -> Option<(Transport, SocketAddr)> {
    let ip = uri.host_ip()?;
    let transport = match uri.transport_param().map(str::to_ascii_lowercase).as_deref() {
        _ if matches!(uri.scheme, sip::Scheme::Sips) => Transport::Tls,
        Some("tcp") => Transport::Tcp,
        Some("tls") => Transport::Tls,
        None | Some("udp") => Transport::Udp,
        Some(_) => return None,
    };
    let port = uri
        .port
        .unwrap_or(if transport == Transport::Tls { 5061 } else { 5060 });
    Some((transport, SocketAddr::new(ip, port)))
}

/// Where requests for a registered contact go (RFC 5626 §5.3 in spirit): over the phone's own
/// TCP/TLS connection or, for a phone behind NAT, to the address its REGISTER came from;
/// otherwise to the Contact address, falling back to the source when that is not an IP.
pub fn binding_target(b: &store::Binding) -> Option<Peer> {
    let (transport, addr) = parse_source(&b.source)?;
    let via_source = Peer {
        transport,
        addr,
        conn: if transport == Transport::Udp { 0 } else { b.conn },
    };
    if b.behind_nat || transport != Transport::Udp {
        return Some(via_source);
    }
    match Uri::parse(&b.contact).ok().as_ref().and_then(uri_target) {
        Some((Transport::Udp, addr)) => Some(Peer {
            transport: Transport::Udp,
            addr,
            conn: 0,
        }),
        _ => Some(via_source),
    }
}

/// Parses a binding's stored source (`udp:198.51.100.7:5060`).
pub fn parse_source(source: &str) -> Option<(Transport, SocketAddr)> {
    let (t, addr) = source.split_once(':')?;
    let transport = match t {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        "ws" => Transport::Ws,
        "wss" => Transport::Wss,
        _ => return None,
    };
    Some((transport, addr.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalAddrs {
        LocalAddrs {
            udp: Some("192.0.2.1:5060".parse().expect("addr")),
            tcp: Some("192.0.2.1:5060".parse().expect("addr")),
            tls: Some("192.0.2.1:5061".parse().expect("addr")),
            domain: "example.com".into(),
        }
    }

    #[test]
    fn recognises_its_own_uris() {
        let l = local();
        for ours in [
            "sip:192.0.2.1;lr",
            "sip:192.0.2.1:5060;transport=tcp;lr",
            "sips:192.0.2.1;lr",
            "sip:example.com;lr",
        ] {
            assert!(l.is_ours(&Uri::parse(ours).expect("uri")), "{ours}");
        }
        for theirs in [
            "sip:192.0.2.1:5070",
            "sip:192.0.2.2",
            "sip:example.org",
            "sip:example.com:5080",
        ] {
            assert!(!l.is_ours(&Uri::parse(theirs).expect("uri")), "{theirs}");
        }
    }

    #[test]
    fn record_route_and_via() {
        let l = local();
        assert_eq!(
            l.record_route(Transport::Tls).as_deref(),
            Some("<sip:192.0.2.1:5061;transport=tls;lr>")
        );
        assert_eq!(
            l.via(Transport::Udp, "z9hG4bKx").as_deref(),
            Some("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport")
        );
    }

    #[test]
    fn targets() {
        let t = |s: &str| uri_target(&Uri::parse(s).expect("uri"));
        assert_eq!(
            t("sip:1001@10.0.0.5:5062"),
            Some((Transport::Udp, "10.0.0.5:5062".parse().expect("a")))
        );
        assert_eq!(
            t("sip:1001@10.0.0.5;transport=TCP"),
            Some((Transport::Tcp, "10.0.0.5:5060".parse().expect("a")))
        );
        assert_eq!(
            t("sips:1001@[2001:db8::1]"),
            Some((Transport::Tls, "[2001:db8::1]:5061".parse().expect("a")))
        );
        assert_eq!(t("sip:1001@phone.example.com"), None);
        assert_eq!(
            parse_source("tcp:[2001:db8::1]:5070"),
            Some((Transport::Tcp, "[2001:db8::1]:5070".parse().expect("a")))
        );
    }
}
