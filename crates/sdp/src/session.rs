//! The session description [`Sdp`]: its session-level lines, its media sections, serialization,
//! and the edits that span the whole description (RFC 8866 §5).
//!
//! Serialization writes every line as it was received unless an edit re-rendered it, each ending
//! in CRLF, so an unedited description parsed from CRLF input comes back byte for byte.

use std::fmt;
use std::net::IpAddr;

use crate::attr::{self, Direction};
use crate::connection::{self, connection_in, rewrite_connections, rewrite_origin, session_connection_slot, uses_ice};
use crate::error::Problem;
use crate::line::Line;
use crate::media::{self, Media, MediaMut, MediaSection};

/// A session description: session-level lines, then media sections, every line kept in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub(crate) session: Vec<Line>,
    pub(crate) media: Vec<MediaSection>,
}

impl Sdp {
    /// Serializes the description, every line ending in CRLF.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size = |l: &Line| l.value.len() + 4;
        let mut out = Vec::with_capacity(
            self.session.iter().map(size).sum::<usize>()
                + self
                    .media
                    .iter()
                    .map(|m| m.m.raw.len() + 4 + m.lines.iter().map(size).sum::<usize>())
                    .sum::<usize>(),
        );
        for line in &self.session {
            line.write(&mut out);
        }
        for section in &self.media {
            out.extend_from_slice(b"m=");
            out.extend_from_slice(section.m.raw.as_bytes());
            out.extend_from_slice(b"\r\n");
            for line in &section.lines {
                line.write(&mut out);
            }
        }
        out
    }

    /// The session-level connection address (`c=`, RFC 8866 §5.7); `None` when absent or not an
    /// IP literal. See [`Media::connection_addr`] for the address a stream actually uses.
    pub fn connection_addr(&self) -> Option<IpAddr> {
        connection_in(&self.session)
    }

    /// Moves the description to `addr`, as a media relay anchoring the streams does: rewrites the
    /// session-level `c=` (adding one, in RFC 8866 §5 order, when there is none), every
    /// media-level `c=`, and the address of `o=` (§5.2), with `IN IP4` or `IN IP6` chosen by
    /// `addr`.
    ///
    /// A `c=` holding the unspecified address (`0.0.0.0`, `::`) is left as it is, so a stream on
    /// hold stays on hold — unless ICE is in use there (`a=ice-ufrag`), where that address does
    /// not mean hold and is rewritten too.
    ///
    /// The `o=` version is not incremented (a relay rewrites every version of a peer's
    /// description the same way), and `a=rtcp` addresses are not touched: set them with
    /// [`MediaMut::set_rtcp`] or drop them with [`MediaMut::remove_rtcp`]. Nor are ICE
    /// candidates: drop them with [`MediaMut::remove_attribute`] when anchoring media.
    pub fn set_connection(&mut self, addr: IpAddr) {
        for origin in self.session.iter_mut().filter(|l| l.kind == b'o') {
            rewrite_origin(origin, addr);
        }
        let session_ice = uses_ice(&self.session);
        let any_ice = session_ice || self.media.iter().any(|m| uses_ice(&m.lines));
        if !rewrite_connections(&mut self.session, addr, !any_ice) {
            let at = session_connection_slot(&self.session);
            self.session
                .insert(at, Line::new(b'c', connection::connection_value(addr)));
        }
        for section in &mut self.media {
            let keep_hold = !(session_ice || uses_ice(&section.lines));
            rewrite_connections(&mut section.lines, addr, keep_hold);
        }
    }

    /// The session-level direction attribute, if any (each stream may override it).
    pub fn session_direction(&self) -> Option<Direction> {
        attr::direction_in(&self.session)
    }

    /// The media sections, in order.
    pub fn media(&self) -> impl ExactSizeIterator<Item = Media<'_>> + DoubleEndedIterator {
        let session = &self.session;
        self.media.iter().map(move |m| Media::new(session, m))
    }

    /// The media sections, in order, for editing.
    pub fn media_mut(&mut self) -> impl ExactSizeIterator<Item = MediaMut<'_>> + DoubleEndedIterator {
        let session = &self.session;
        self.media.iter_mut().map(move |m| MediaMut::new(session, m))
    }

    /// Whether the call is on hold: at least one stream is not rejected, and every such stream
    /// is on hold ([`Media::is_on_hold`]).
    pub fn is_on_hold(&self) -> bool {
        let mut active = self.media().filter(|m| !m.is_rejected()).peekable();
        active.peek().is_some() && active.all(|m| m.is_on_hold())
    }

    /// The first session-level `a=<name>` (ASCII case-insensitive): its value, `""` for a flag.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        media::first_attribute(&self.session, name)
    }

    /// Every session-level attribute, in order: name and value (`None` for a flag).
    pub fn attributes(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.session.iter().filter_map(Line::attribute)
    }

    /// Appends the session-level attribute `a=<name>[:<value>]`, on the terms of
    /// [`MediaMut::push_attribute`].
    pub fn push_attribute(&mut self, name: &str, value: Option<&str>) -> Result<(), Problem> {
        media::push_attribute(&mut self.session, name, value)
    }

    /// Removes every session-level `a=<name>` (ASCII case-insensitive); returns how many.
    pub fn remove_attribute(&mut self, name: &str) -> usize {
        media::remove_attribute(&mut self.session, name)
    }
}

impl fmt::Display for Sdp {
    /// The serialized description (it is UTF-8 by construction).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}
