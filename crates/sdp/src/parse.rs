//! The parser: from bytes to [`Sdp`], checking the structure of RFC 8866 §5 and §9.
//!
//! `v=0` first; exactly one `o=` (six fields) and one `s=` at session level; at most one
//! session-level `c=` (three fields; media-level `c=` may repeat, §5.7); after the first `m=`,
//! only the media-level lines `i= c= b= k= a=` and lines of unknown type. The attributes of
//! [`crate::attr`] must be well formed, with at most one direction attribute and one `a=rtpmap`
//! per payload type at each level.
//!
//! Tolerated for interoperability: any order of the session-level lines after `v=`, a missing
//! `t=`, trailing white space inside lines, lines of unknown type (kept, RFC 8866 §5 tells
//! parsers to ignore them), `m=` lines without formats. Lines are never reordered or
//! normalized: what is not edited is written back as received.

use crate::attr::LevelCheck;
use crate::connection::{check_connection, check_origin};
use crate::error::{Problem, SdpError};
use crate::line::{self, Line};
use crate::media::MediaSection;
use crate::mline::MLine;
use crate::session::Sdp;

impl Sdp {
    /// Parses a session description. Lines may end in CRLF or LF; empty lines at the end are
    /// ignored. Never panics: anything malformed is an [`SdpError`] naming the line.
    pub fn parse(input: &[u8]) -> Result<Sdp, SdpError> {
        parse(input)
    }
}

fn parse(input: &[u8]) -> Result<Sdp, SdpError> {
    let mut lines = line::split(input)?.into_iter();
    match lines.next() {
        Some((_, l)) if l.kind == b'v' && l.value == "0" => {}
        Some((no, l)) if l.kind == b'v' => return Err(SdpError::new(no, Problem::UnsupportedVersion)),
        _ => return Err(SdpError::new(1, Problem::VersionNotFirst)),
    }
    let mut sdp = Sdp {
        session: vec![Line::new(b'v', "0")],
        media: Vec::new(),
    };
    let mut level = LevelCheck::default();
    for (no, line) in lines {
        let err = |p| SdpError::new(no, p);
        let in_media = !sdp.media.is_empty();
        let count = |kind: u8| sdp.session.iter().filter(|l| l.kind == kind).count();
        match line.kind {
            b'm' => {
                let m = MLine::parse(&line.value).map_err(err)?;
                sdp.media.push(MediaSection { m, lines: Vec::new() });
                level = LevelCheck::default();
                continue;
            }
            b'v' | b'o' | b's' | b'u' | b'e' | b'p' | b't' | b'r' | b'z' if in_media => {
                return Err(err(Problem::NotAllowedInMedia(char::from(line.kind))));
            }
            b'v' | b'o' | b's' | b'c' if count(line.kind) > 0 && !in_media => {
                return Err(err(Problem::Duplicate(char::from(line.kind))));
            }
            b'o' => check_origin(&line.value).map_err(err)?,
            b'c' => check_connection(&line.value).map_err(err)?,
            b'a' => level.admit(&line).map_err(err)?,
            _ => {}
        }
        match sdp.media.last_mut() {
            Some(section) => section.lines.push(line),
            None => sdp.session.push(line),
        }
    }
    for kind in [b'o', b's'] {
        if !sdp.session.iter().any(|l| l.kind == kind) {
            return Err(SdpError::new(0, Problem::Missing(char::from(kind))));
        }
    }
    Ok(sdp)
}
