//! Header names: the headers of RFC 3261 §20 and common extensions, their compact forms
//! (§7.3.3, IANA registry) and case-insensitive lookup. Unknown names map to
//! [`HeaderName::Other`] and are kept verbatim by the message.

macro_rules! header_names {
    ($( $variant:ident => $text:literal, $key:literal $(| $alias:literal)* ; list: $list:literal ),* $(,)?) => {
        /// A header name. `Other` stands for every name this table does not know.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $variant, )*
            Other,
        }

        impl HeaderName {
            /// Looks a name up, case-insensitively, compact forms included.
            pub fn from_name(name: &str) -> HeaderName {
                let b = name.as_bytes();
                let mut buf = [0u8; 24];
                if b.len() > buf.len() {
                    return HeaderName::Other;
                }
                for (d, s) in buf.iter_mut().zip(b) {
                    *d = s.to_ascii_lowercase();
                }
                match &buf[..b.len()] {
                    $( $key $(| $alias)* => HeaderName::$variant, )*
                    _ => HeaderName::Other,
                }
            }

            /// The canonical spelling (`"Call-ID"`, `"WWW-Authenticate"`); `"?"` for `Other`.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $text, )*
                    HeaderName::Other => "?",
                }
            }

            /// Whether the header's grammar is a comma-separated list (RFC 3261 §7.3.1), so
            /// several values may share one line.
            pub fn is_list(&self) -> bool {
                match self {
                    $( HeaderName::$variant => $list, )*
                    HeaderName::Other => false,
                }
            }
        }
    };
}

header_names! {
    Accept => "Accept", b"accept"; list: true,
    AcceptEncoding => "Accept-Encoding", b"accept-encoding"; list: true,
    AcceptLanguage => "Accept-Language", b"accept-language"; list: true,
    AlertInfo => "Alert-Info", b"alert-info"; list: true,
    Allow => "Allow", b"allow"; list: true,
    AllowEvents => "Allow-Events", b"allow-events" | b"u"; list: true,
    AuthenticationInfo => "Authentication-Info", b"authentication-info"; list: false,
    Authorization => "Authorization", b"authorization"; list: false,
    CallId => "Call-ID", b"call-id" | b"i"; list: false,
    CallInfo => "Call-Info", b"call-info"; list: true,
    Contact => "Contact", b"contact" | b"m"; list: true,
    ContentDisposition => "Content-Disposition", b"content-disposition"; list: false,
    ContentEncoding => "Content-Encoding", b"content-encoding" | b"e"; list: true,
    ContentLanguage => "Content-Language", b"content-language"; list: true,
    ContentLength => "Content-Length", b"content-length" | b"l"; list: false,
    ContentType => "Content-Type", b"content-type" | b"c"; list: false,
    CSeq => "CSeq", b"cseq"; list: false,
    Date => "Date", b"date"; list: false,
    ErrorInfo => "Error-Info", b"error-info"; list: true,
    Event => "Event", b"event" | b"o"; list: false,
    Expires => "Expires", b"expires"; list: false,
    From => "From", b"from" | b"f"; list: false,
    InReplyTo => "In-Reply-To", b"in-reply-to"; list: true,
    MaxForwards => "Max-Forwards", b"max-forwards"; list: false,
    MimeVersion => "MIME-Version", b"mime-version"; list: false,
    MinExpires => "Min-Expires", b"min-expires"; list: false,
    MinSe => "Min-SE", b"min-se"; list: false,
    Organization => "Organization", b"organization"; list: false,
    Path => "Path", b"path"; list: true,
    Priority => "Priority", b"priority"; list: false,
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate"; list: false,
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization"; list: false,
    ProxyRequire => "Proxy-Require", b"proxy-require"; list: true,
    RAck => "RAck", b"rack"; list: false,
    Reason => "Reason", b"reason"; list: true,
    RecordRoute => "Record-Route", b"record-route"; list: true,
    ReferTo => "Refer-To", b"refer-to" | b"r"; list: false,
    ReferredBy => "Referred-By", b"referred-by" | b"b"; list: false,
    ReplyTo => "Reply-To", b"reply-to"; list: false,
    Require => "Require", b"require"; list: true,
    RetryAfter => "Retry-After", b"retry-after"; list: false,
    Route => "Route", b"route"; list: true,
    RSeq => "RSeq", b"rseq"; list: false,
    Server => "Server", b"server"; list: false,
    ServiceRoute => "Service-Route", b"service-route"; list: true,
    SessionExpires => "Session-Expires", b"session-expires" | b"x"; list: false,
    Subject => "Subject", b"subject" | b"s"; list: false,
    SubscriptionState => "Subscription-State", b"subscription-state"; list: false,
    Supported => "Supported", b"supported" | b"k"; list: true,
    Timestamp => "Timestamp", b"timestamp"; list: false,
    To => "To", b"to" | b"t"; list: false,
    Unsupported => "Unsupported", b"unsupported"; list: true,
    UserAgent => "User-Agent", b"user-agent"; list: false,
    Via => "Via", b"via" | b"v"; list: true,
    Warning => "Warning", b"warning"; list: true,
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate"; list: false,
    Identity => "Identity", b"identity" | b"y"; list: false,
    AcceptContact => "Accept-Contact", b"accept-contact" | b"a"; list: true,
    RejectContact => "Reject-Contact", b"reject-contact" | b"j"; list: true,
    RequestDisposition => "Request-Disposition", b"request-disposition" | b"d"; list: true,
}

#[cfg(test)]
mod tests {
    use super::HeaderName;

    #[test]
    fn compact_and_case_insensitive() {
        assert_eq!(HeaderName::from_name("i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_name("MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::from_name("v"), HeaderName::Via);
        assert_eq!(HeaderName::from_name("L"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_name("C%6Fntact"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_name("X-Very-Long-Header-Name-Beyond-Buffer"),
            HeaderName::Other
        );
        for c in "i m f t v l c k s e o u r b x y a j d".split(' ') {
            assert_ne!(HeaderName::from_name(c), HeaderName::Other, "{c}");
        }
    }

    #[test]
    fn canonical_names() {
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        assert_eq!(HeaderName::CSeq.as_str(), "CSeq");
        assert_eq!(HeaderName::WwwAuthenticate.as_str(), "WWW-Authenticate");
        assert_eq!(HeaderName::MaxForwards.as_str(), "Max-Forwards");
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::Authorization.is_list());
    }
}
