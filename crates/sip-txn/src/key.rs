//! Transaction matching keys: server side per RFC 3261 §17.2.3 (branch + sent-by + method, with
//! the RFC 2543 fallback for requests whose branch lacks the magic cookie), client side per
//! §17.1.3 (branch + CSeq method), and the INVITE key a CANCEL looks for (§9.2).

use sip::headers::Via;
use sip::{Message, Method, ParseError};

/// Which transaction a request belongs to on the server side. ACK is keyed as INVITE (it belongs
/// to the INVITE transaction); CANCEL has its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKey {
    Rfc3261 {
        branch: Box<str>,
        sent_by: Box<str>,
        method: Method,
    },
    Rfc2543 {
        request_uri: Box<str>,
        from_tag: Box<str>,
        call_id: Box<str>,
        cseq: u32,
        top_via: Box<str>,
        method: Method,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub branch: Box<str>,
    pub method: Method,
}

fn sent_by(via: &Via<'_>) -> Box<str> {
    let host = via.host.to_ascii_lowercase();
    match via.port {
        Some(p) => format!("{host}:{p}").into(),
        None => host.into(),
    }
}

fn key_method(m: &Method) -> Method {
    if *m == Method::Ack { Method::Invite } else { m.clone() }
}

impl ServerKey {
    /// The key of a request; `as_method` replaces its method (a CANCEL looking for its INVITE).
    pub fn of_request(req: &Message, as_method: Option<Method>) -> Result<ServerKey, ParseError> {
        let method = match as_method {
            Some(m) => m,
            None => key_method(req.method().ok_or(ParseError::BadStartLine("not a request"))?),
        };
        let via = req.via()?;
        if via.has_rfc3261_branch() {
            let branch = via.branch().unwrap_or_default();
            return Ok(ServerKey::Rfc3261 {
                branch: branch.into(),
                sent_by: sent_by(&via),
                method,
            });
        }
        let top_via = req
            .list_values(sip::HeaderName::Via)
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        Ok(ServerKey::Rfc2543 {
            request_uri: req.request_uri_str().unwrap_or_default().into(),
            from_tag: req.from_header()?.tag().unwrap_or_default().into(),
            call_id: req.call_id()?.into(),
            cseq: req.cseq()?.seq,
            top_via: top_via.into(),
            method,
        })
    }
}

impl ClientKey {
    /// The key of a request we send.
    pub fn of_request(req: &Message) -> Result<ClientKey, ParseError> {
        let via = req.via()?;
        Ok(ClientKey {
            branch: via.branch().unwrap_or_default().into(),
            method: req.cseq()?.method,
        })
    }

    /// The key a response matches (§17.1.3): top Via branch and CSeq method.
    pub fn of_response(resp: &Message) -> Result<ClientKey, ParseError> {
        Self::of_request(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Message {
        Message::parse(s.as_bytes().to_vec()).expect("valid")
    }

    const INVITE: &str = "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP PC.example.com:5060;branch=z9hG4bK1\r\n\
From: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\n\r\n";

    #[test]
    fn ack_and_cancel_find_the_invite() {
        let inv = ServerKey::of_request(&msg(INVITE), None).expect("key");
        let ack = msg(&INVITE.replace("INVITE sip", "ACK sip").replace("7 INVITE", "7 ACK"));
        assert_eq!(ServerKey::of_request(&ack, None).expect("key"), inv);
        let cancel = msg(&INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("7 INVITE", "7 CANCEL"));
        let own = ServerKey::of_request(&cancel, None).expect("key");
        assert_ne!(own, inv);
        assert_eq!(ServerKey::of_request(&cancel, Some(Method::Invite)).expect("key"), inv);
        let other_host = msg(&INVITE.replace("PC.example.com", "pc.EXAMPLE.com"));
        assert_eq!(
            ServerKey::of_request(&other_host, None).expect("key"),
            inv,
            "sent-by host is case-insensitive"
        );
    }

    #[test]
    fn rfc2543_without_cookie() {
        let old = INVITE.replace("branch=z9hG4bK1", "branch=1234");
        let k = ServerKey::of_request(&msg(&old), None).expect("key");
        assert!(matches!(k, ServerKey::Rfc2543 { cseq: 7, .. }));
        let bare = INVITE.replace("branch=z9hG4bK1", "branch=z9hG4bK");
        assert!(matches!(
            ServerKey::of_request(&msg(&bare), None).expect("key"),
            ServerKey::Rfc2543 { .. }
        ));
    }
}
