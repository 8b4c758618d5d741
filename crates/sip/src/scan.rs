//! Lexical building blocks of RFC 3261 §25.1: token characters, linear white space, quoted
//! strings with escapes, `%`-escapes, and splitting of comma- and semicolon-separated lists that
//! respects quotes and `<...>`.
//!
//! Everything works on `&str` slices of the received header section and returns sub-slices: no
//! allocation. Inside a header value, CR and LF can only be part of a fold (the header splitter
//! ends a header at a line break not followed by white space), so they count as white space here.

use std::borrow::Cow;

use crate::error::Problem;

/// `token` characters (RFC 3261 §25.1).
#[inline]
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

/// White space inside a header value, folds included.
#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

pub fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !is_lws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_lws(c)).map_or(start, |e| e + 1);
    // Both ends sit next to ASCII bytes (or at the ends), so they are char boundaries.
    &s[start..end]
}

/// Given `s[open] == '"'`, the index just past the closing quote.
pub fn quoted_end(s: &[u8], open: usize) -> Result<usize, Problem> {
    let mut i = open + 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(Problem::UnterminatedQuote)
}

/// The content of a quoted string without its quotes and with `\x` pairs resolved.
/// Strings that are not quoted come back unchanged.
pub fn unquote(s: &str) -> Cow<'_, str> {
    let inner = match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner,
        None => return Cow::Borrowed(s),
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Splits `s` at every `sep` that is outside quoted strings and outside `<...>`.
/// Elements are returned trimmed of white space; empty elements are returned too, so callers can
/// reject them where the grammar forbids them.
pub fn split_outside(s: &str, sep: u8) -> SplitOutside<'_> {
    SplitOutside {
        s,
        pos: 0,
        done: false,
        sep,
    }
}

pub struct SplitOutside<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
    sep: u8,
}

impl<'a> Iterator for SplitOutside<'a> {
    /// `Err` when a quote or `<` is left open: the rest of the value is unusable.
    type Item = Result<&'a str, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let bytes = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        // Header values are short: a plain loop beats vectorised search here. Inside `<>` only
        // `>` matters (URIs hold no quotes).
        while i < bytes.len() {
            let c = bytes[i];
            if c == self.sep {
                self.pos = i + 1;
                return Some(Ok(trim_lws(&self.s[start..i])));
            } else if c == b'"' {
                match quoted_end(bytes, i) {
                    Ok(end) => i = end,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            } else if c == b'<' {
                match bytes[i..].iter().position(|&b| b == b'>') {
                    Some(close) => i += close + 1,
                    None => {
                        self.done = true;
                        return Some(Err(Problem::UnterminatedAngle));
                    }
                }
            } else {
                i += 1;
            }
        }
        self.done = true;
        Some(Ok(trim_lws(&self.s[start..])))
    }
}

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks that every `%` in `s` starts a valid `%HH` escape.
pub fn check_escapes(s: &str) -> Result<(), Problem> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'%', &b[i..]) {
        let p = i + off;
        match (
            b.get(p + 1).copied().and_then(hex_val),
            b.get(p + 2).copied().and_then(hex_val),
        ) {
            (Some(_), Some(_)) => i = p + 3,
            _ => return Err(Problem::BadEscape),
        }
    }
    Ok(())
}

/// Resolves `%HH` escapes. The result is bytes because an escape may encode anything, `%00`
/// included; invalid escapes are kept literally.
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    let b = s.as_bytes();
    if memchr::memchr(b'%', b).is_none() {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Parses a decimal number of at most `max`, rejecting signs, blanks and overflow.
pub fn parse_decimal(s: &str, max: u64) -> Result<u64, Problem> {
    if s.is_empty() {
        return Err(Problem::Empty);
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return Err(Problem::BadNumber);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(Problem::NumberTooLarge)?;
        if v > max {
            return Err(Problem::NumberTooLarge);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lists_outside_quotes_and_brackets() {
        let v: Vec<_> = split_outside(r#""a,b" <sip:x;y,z>, c ,"q\"," d"#, b',')
            .collect::<Result<_, _>>()
            .expect("balanced");
        assert_eq!(v, [r#""a,b" <sip:x;y,z>"#, "c", r#""q\"," d"#]);
    }

    #[test]
    fn open_quote_is_an_error() {
        assert!(split_outside(r#""abc, d"#, b',').any(|r| r.is_err()));
    }

    #[test]
    fn unquote_resolves_pairs() {
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(unquote("plain"), "plain");
    }

    #[test]
    fn unescape_keeps_nul() {
        assert_eq!(&*unescape("null-%00-null"), b"null-\0-null");
        assert_eq!(&*unescape("%ZZ"), b"%ZZ");
        assert!(check_escapes("%ZK").is_err());
        assert!(check_escapes("a%41").is_ok());
    }

    #[test]
    fn decimal_limits() {
        assert_eq!(parse_decimal("0068", 255), Ok(68));
        assert_eq!(
            parse_decimal("4294967296", u32::MAX as u64),
            Err(Problem::NumberTooLarge)
        );
        assert_eq!(parse_decimal("-1", 10), Err(Problem::BadNumber));
        assert_eq!(
            parse_decimal("99999999999999999999999", u64::MAX),
            Err(Problem::NumberTooLarge)
        );
    }
}
