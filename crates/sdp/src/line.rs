//! Lines: cutting a description into `<type>=<value>` lines (RFC 8866 §5) and the [`Line`] kept
//! for each.
//!
//! A line ends at LF, with or without a CR before it (RFC 8866 §5 requires CRLF and lets parsers
//! accept a bare LF). The last line may lack its line break, and empty lines at the very end are
//! tolerated and dropped; an empty line anywhere else is an error. The value is kept verbatim —
//! white space included — so a line nobody edits is written back byte for byte.

use crate::error::{Problem, SdpError};

/// One `<type>=<value>` line, as received (the value without its line break).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub kind: u8,
    pub value: String,
}

impl Line {
    pub fn new(kind: u8, value: impl Into<String>) -> Line {
        Line {
            kind,
            value: value.into(),
        }
    }

    /// For an `a=` line: the attribute name and, after the first colon, its value.
    pub fn attribute(&self) -> Option<(&str, Option<&str>)> {
        if self.kind != b'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (self.value.as_str(), None),
        })
    }

    /// Whether this is `a=<name>...`, the name compared ASCII case-insensitively.
    pub fn is_attribute(&self, name: &str) -> bool {
        self.attribute().is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The value of `a=<name>:<value>` (`None` for another line or a flag attribute).
    pub fn attribute_value(&self, name: &str) -> Option<&str> {
        match self.attribute() {
            Some((n, v)) if n.eq_ignore_ascii_case(name) => v,
            _ => None,
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.kind);
        out.push(b'=');
        out.extend_from_slice(self.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Cuts `input` into lines, each with its 1-based line number.
pub(crate) fn split(input: &[u8]) -> Result<Vec<(usize, Line)>, SdpError> {
    let mut raw: Vec<&[u8]> = input.split(|&b| b == b'\n').map(strip_cr).collect();
    while raw.last().is_some_and(|l| l.is_empty()) {
        raw.pop();
    }
    if raw.is_empty() {
        return Err(SdpError::new(0, Problem::Empty));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, bytes)| {
            let no = i + 1;
            let err = |p| SdpError::new(no, p);
            if bytes.is_empty() {
                return Err(err(Problem::BlankLine));
            }
            if bytes.iter().any(|&b| b == 0 || b == b'\r') {
                return Err(err(Problem::ControlCharacter));
            }
            let text = std::str::from_utf8(bytes).map_err(|_| err(Problem::NotUtf8))?;
            match text.as_bytes() {
                [kind, b'=', ..] if kind.is_ascii_alphabetic() => {
                    Ok((no, Line::new(*kind, text.get(2..).unwrap_or(""))))
                }
                _ => Err(err(Problem::NotTypeValue)),
            }
        })
        .collect()
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &[u8]) -> Result<Vec<(usize, u8, String)>, Problem> {
        split(input)
            .map(|v| v.into_iter().map(|(n, l)| (n, l.kind, l.value)).collect())
            .map_err(|e| e.problem())
    }

    #[test]
    fn line_ends() {
        let want = vec![(1, b'v', "0".to_owned()), (2, b's', " x ".to_owned())];
        assert_eq!(kinds(b"v=0\r\ns= x \r\n"), Ok(want.clone()));
        assert_eq!(kinds(b"v=0\ns= x \n"), Ok(want.clone()));
        assert_eq!(kinds(b"v=0\r\ns= x "), Ok(want.clone()));
        assert_eq!(kinds(b"v=0\r\ns= x \r\n\r\n"), Ok(want.clone()));
        assert_eq!(kinds(b"v=0\ns= x \n\n\n"), Ok(want));
    }

    #[test]
    fn bad_lines() {
        assert_eq!(kinds(b""), Err(Problem::Empty));
        assert_eq!(kinds(b"\r\n\r\n"), Err(Problem::Empty));
        assert_eq!(kinds(b"v=0\r\n\r\ns=x\r\n"), Err(Problem::BlankLine));
        assert_eq!(kinds(b"v=0\r\ns=a\rb\r\n"), Err(Problem::ControlCharacter));
        assert_eq!(kinds(b"v=0\r\ns=a\0\r\n"), Err(Problem::ControlCharacter));
        assert_eq!(kinds(b"v=0\r\ns=\xff\r\n"), Err(Problem::NotUtf8));
        assert_eq!(kinds(b"v=0\r\nhello\r\n"), Err(Problem::NotTypeValue));
        assert_eq!(kinds(b"v = 0\r\n"), Err(Problem::NotTypeValue));
        assert_eq!(kinds(b"1=0\r\n"), Err(Problem::NotTypeValue));
        assert_eq!(split(b"v=0\r\nx").map_err(|e| e.line()), Err(2));
    }

    #[test]
    fn attributes() {
        let l = Line::new(b'a', "rtpmap:0 PCMU/8000");
        assert_eq!(l.attribute(), Some(("rtpmap", Some("0 PCMU/8000"))));
        assert!(l.is_attribute("RTPMAP"));
        assert_eq!(l.attribute_value("rtpmap"), Some("0 PCMU/8000"));
        assert_eq!(Line::new(b'a', "sendonly").attribute(), Some(("sendonly", None)));
        assert_eq!(Line::new(b's', "x:y").attribute(), None);
    }
}
