//! Media sections: the lines from one `m=` to the next (RFC 8866 §5.14), read through [`Media`]
//! and edited through [`MediaMut`].
//!
//! Both views also see the session-level lines, because a media section inherits from them: its
//! direction (RFC 8866 §6.7, media level overriding session level) and its connection address
//! (§5.7). Edits re-render only the lines they touch, and new attributes go at the end of the
//! section (attributes are the last lines of a media description, §5).

use std::net::IpAddr;

use crate::attr::{self, Direction, LevelCheck, parse_ptime, parse_rtcp, payload_type};
use crate::codec::{Codec, resolve};
use crate::connection::{connection_in, is_null, uses_ice};
use crate::crypto::Crypto;
use crate::error::Problem;
use crate::line::Line;
use crate::mline::MLine;

/// One media description: its `m=` line and the lines after it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaSection {
    pub m: MLine,
    pub lines: Vec<Line>,
}

/// A read-only view of one media section.
#[derive(Debug, Clone, Copy)]
pub struct Media<'a> {
    session: &'a [Line],
    section: &'a MediaSection,
}

/// A mutable view of one media section. It has every read accessor of [`Media`].
#[derive(Debug)]
pub struct MediaMut<'a> {
    session: &'a [Line],
    section: &'a mut MediaSection,
}

/// Whether two formats are the same: equal payload types, or equal strings for non-RTP formats.
pub(crate) fn same_format(a: &str, b: &str) -> bool {
    match (payload_type(a), payload_type(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl<'a> Media<'a> {
    pub(crate) fn new(session: &'a [Line], section: &'a MediaSection) -> Media<'a> {
        Media { session, section }
    }

    /// The media type: `audio`, `video`, `image`, `application`, ...
    pub fn kind(&self) -> &'a str {
        &self.section.m.kind
    }

    /// The transport port; 0 for a rejected or disabled stream (RFC 3264 §6, §8.2).
    pub fn port(&self) -> u16 {
        self.section.m.port
    }

    /// The `/<number of ports>` of the `m=` line, if given.
    pub fn port_count(&self) -> Option<u16> {
        self.section.m.port_count
    }

    /// Whether the stream is rejected or disabled (port 0).
    pub fn is_rejected(&self) -> bool {
        self.section.m.port == 0
    }

    /// The transport protocol: `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, `udptl`, ...
    pub fn proto(&self) -> &'a str {
        &self.section.m.proto
    }

    /// Whether the protocol is an RTP profile, whose formats are payload types.
    pub fn is_rtp(&self) -> bool {
        self.section.m.is_rtp()
    }

    /// The format list of the `m=` line, in order (payload types for RTP).
    pub fn formats(&self) -> &'a [String] {
        &self.section.m.formats
    }

    /// The direction: the media-level attribute, else the session-level one, else `SendRecv`.
    pub fn direction(&self) -> Direction {
        attr::direction_in(&self.section.lines)
            .or_else(|| attr::direction_in(self.session))
            .unwrap_or_default()
    }

    /// `a=rtcp` (RFC 3605): the RTCP port and, when given as an IP literal, its address.
    pub fn rtcp(&self) -> Option<(u16, Option<IpAddr>)> {
        self.section
            .lines
            .iter()
            .find_map(|l| l.attribute_value("rtcp").and_then(parse_rtcp))
    }

    /// The connection address: the media-level `c=` if there is one, else the session-level one
    /// (RFC 8866 §5.7). `None` when it is absent or not an IP literal.
    pub fn connection_addr(&self) -> Option<IpAddr> {
        connection_in(self.connection_level())
    }

    /// Whether the connection address in force is the unspecified one (`c=IN IP4 0.0.0.0` or
    /// `::`): the RFC 2543 hold (RFC 3264 §8.4), or with ICE a stream without a default candidate.
    pub fn has_null_connection(&self) -> bool {
        self.connection_level().iter().any(is_null)
    }

    /// Whether the stream is on hold from the point of view of whoever wrote it: it does not
    /// want to receive (`sendonly` or `inactive`), or its connection address is unspecified and
    /// ICE (`a=ice-ufrag`) is not in use. A rejected stream (port 0) is not on hold.
    pub fn is_on_hold(&self) -> bool {
        let null_hold = || self.has_null_connection() && !uses_ice(&self.section.lines) && !uses_ice(self.session);
        !self.is_rejected() && (matches!(self.direction(), Direction::SendOnly | Direction::Inactive) || null_hold())
    }

    /// The codecs of the format list, in order, resolved from `a=rtpmap`/`a=fmtp` and the static
    /// payload types of RFC 3551. Formats that resolve to nothing (a dynamic payload type without
    /// `a=rtpmap`, any format of a non-RTP protocol) are left out.
    pub fn codecs(&self) -> Vec<Codec> {
        if !self.is_rtp() {
            return Vec::new();
        }
        self.formats()
            .iter()
            .filter_map(|f| resolve(f, &self.section.lines))
            .collect()
    }

    /// `a=ptime` in milliseconds (fractions rounded down): media level, else session level.
    pub fn ptime(&self) -> Option<u32> {
        let find = |lines: &[Line]| {
            lines
                .iter()
                .find_map(|l| l.attribute_value("ptime").and_then(parse_ptime))
        };
        find(&self.section.lines).or_else(|| find(self.session))
    }

    /// The first media-level `a=<name>` (ASCII case-insensitive): its value, `""` for a flag.
    pub fn attribute(&self, name: &str) -> Option<&'a str> {
        first_attribute(&self.section.lines, name)
    }

    /// Whether the profile is secure RTP with SDES or DTLS keys (`RTP/SAVP`, `RTP/SAVPF`, RFC 3711
    /// §12; `UDP/TLS/RTP/SAVP(F)` counts too).
    pub fn is_srtp(&self) -> bool {
        self.proto()
            .rsplit('/')
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case("SAVP") || p.eq_ignore_ascii_case("SAVPF"))
    }

    /// The usable SDES keys of this section (RFC 4568 `a=crypto` lines with a suite and key form
    /// [`Crypto`] understands), in order of preference.
    pub fn crypto(&self) -> Vec<Crypto> {
        self.attributes()
            .filter(|(n, _)| n.eq_ignore_ascii_case("crypto"))
            .filter_map(|(_, v)| v.and_then(Crypto::parse))
            .collect()
    }

    /// Every media-level attribute, in order: name and value (`None` for a flag).
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + use<'a> {
        self.section.lines.iter().filter_map(Line::attribute)
    }

    /// The codec behind one format of this section (listed or not), if it resolves.
    pub(crate) fn codec_of(&self, format: &str) -> Option<Codec> {
        resolve(format, &self.section.lines)
    }

    fn connection_level(&self) -> &'a [Line] {
        if self.section.lines.iter().any(|l| l.kind == b'c') {
            &self.section.lines
        } else {
            self.session
        }
    }
}

pub(crate) fn first_attribute<'a>(lines: &'a [Line], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .filter_map(Line::attribute)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.unwrap_or(""))
}

/// Appends `a=<name>[:<value>]` to `lines` if it is well formed and fits with what is there.
pub(crate) fn push_attribute(lines: &mut Vec<Line>, name: &str, value: Option<&str>) -> Result<(), Problem> {
    let text = |s: &str| !s.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n'));
    if !text(name) || !value.is_none_or(text) {
        return Err(Problem::ControlCharacter);
    }
    if name.contains(':') {
        return Err(Problem::BadAttributeName);
    }
    let line = Line::new(
        b'a',
        match value {
            Some(v) => format!("{name}:{v}"),
            None => name.to_owned(),
        },
    );
    LevelCheck::of(lines).admit(&line)?;
    lines.push(line);
    Ok(())
}

/// Removes every `a=<name>` (ASCII case-insensitive) from `lines`; returns how many there were.
pub(crate) fn remove_attribute(lines: &mut Vec<Line>, name: &str) -> usize {
    let before = lines.len();
    lines.retain(|l| !l.is_attribute(name));
    before - lines.len()
}

impl<'a> MediaMut<'a> {
    pub(crate) fn new(session: &'a [Line], section: &'a mut MediaSection) -> MediaMut<'a> {
        MediaMut { session, section }
    }

    /// The read-only view of this section.
    pub fn as_media(&self) -> Media<'_> {
        Media::new(self.session, self.section)
    }

    /// See [`Media::kind`].
    pub fn kind(&self) -> &str {
        &self.section.m.kind
    }

    /// See [`Media::port`].
    pub fn port(&self) -> u16 {
        self.section.m.port
    }

    /// See [`Media::is_rejected`].
    pub fn is_rejected(&self) -> bool {
        self.section.m.port == 0
    }

    /// See [`Media::proto`].
    pub fn proto(&self) -> &str {
        &self.section.m.proto
    }

    /// See [`Media::formats`].
    pub fn formats(&self) -> &[String] {
        &self.section.m.formats
    }

    /// See [`Media::direction`].
    pub fn direction(&self) -> Direction {
        self.as_media().direction()
    }

    /// See [`Media::rtcp`].
    pub fn rtcp(&self) -> Option<(u16, Option<IpAddr>)> {
        self.as_media().rtcp()
    }

    /// See [`Media::connection_addr`].
    pub fn connection_addr(&self) -> Option<IpAddr> {
        self.as_media().connection_addr()
    }

    /// See [`Media::is_on_hold`].
    pub fn is_on_hold(&self) -> bool {
        self.as_media().is_on_hold()
    }

    /// See [`Media::codecs`].
    pub fn codecs(&self) -> Vec<Codec> {
        self.as_media().codecs()
    }

    /// See [`Media::ptime`].
    pub fn ptime(&self) -> Option<u32> {
        self.as_media().ptime()
    }

    /// See [`Media::attribute`].
    pub fn attribute(&self, name: &str) -> Option<&str> {
        first_attribute(&self.section.lines, name)
    }

    /// Sets the port of the `m=` line; 0 rejects or disables the stream (RFC 3264 §6, §8.2).
    pub fn set_port(&mut self, port: u16) {
        self.section.m.port = port;
        self.section.m.render();
    }

    /// Sets the media-level direction: replaces the direction attribute of this section (in
    /// place), or appends one. Always explicit, so it overrides any session-level direction.
    pub fn set_direction(&mut self, direction: Direction) {
        let lines = &mut self.section.lines;
        let at = lines.iter().position(|l| attr::direction_of(l).is_some());
        lines.retain(|l| attr::direction_of(l).is_none());
        let line = Line::new(b'a', direction.as_str());
        match at {
            Some(i) => lines.insert(i, line),
            None => lines.push(line),
        }
    }

    /// Sets `a=rtcp:<port>[ IN IP4|IP6 <addr>]` (RFC 3605): replaces the first `a=rtcp` in place
    /// (dropping any other), or appends one.
    pub fn set_rtcp(&mut self, port: u16, addr: Option<IpAddr>) {
        let lines = &mut self.section.lines;
        let at = lines.iter().position(|l| l.is_attribute("rtcp"));
        lines.retain(|l| !l.is_attribute("rtcp"));
        let line = Line::new(b'a', format!("rtcp:{}", attr::rtcp_value(port, addr)));
        match at {
            Some(i) => lines.insert(i, line),
            None => lines.push(line),
        }
    }

    /// Removes `a=rtcp`; returns whether there was one.
    pub fn remove_rtcp(&mut self) -> bool {
        remove_attribute(&mut self.section.lines, "rtcp") > 0
    }

    /// Keeps only the formats for which `keep` is true, in their order, and removes the
    /// `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` lines of the formats dropped.
    pub fn retain_formats(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let (kept, dropped): (Vec<String>, Vec<String>) = std::mem::take(&mut self.section.m.formats)
            .into_iter()
            .partition(|f| keep(f));
        self.section.m.formats = kept;
        self.section.m.render();
        if dropped.is_empty() {
            return;
        }
        self.section.lines.retain(|l| {
            let target = ["rtpmap", "fmtp", "rtcp-fb"]
                .iter()
                .find_map(|name| l.attribute_value(name))
                .and_then(|v| v.split_ascii_whitespace().next());
            !target.is_some_and(|t| dropped.iter().any(|d| same_format(d, t)))
        });
    }

    /// Appends the media-level attribute `a=<name>[:<value>]`. Refused when the name is empty or
    /// holds a colon, when either part holds a line break or NUL, when a known attribute is
    /// malformed, or when it conflicts with the section (a second direction, a second
    /// `a=rtpmap` for a payload type).
    pub fn push_attribute(&mut self, name: &str, value: Option<&str>) -> Result<(), Problem> {
        push_attribute(&mut self.section.lines, name, value)
    }

    /// Sets the transport protocol of the `m=` line (`RTP/AVP`, `RTP/SAVP`, ...).
    pub fn set_proto(&mut self, proto: &str) {
        self.section.m.proto = proto.to_owned();
        self.section.m.render();
    }

    /// Removes every media-level `a=<name>` (ASCII case-insensitive); returns how many.
    pub fn remove_attribute(&mut self, name: &str) -> usize {
        remove_attribute(&mut self.section.lines, name)
    }
}
