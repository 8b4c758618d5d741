//! Semicolon-separated parameters (`;name[=value]`), as they follow URIs, name-addrs, Via
//! sent-bys and Content-Types (RFC 3261 §19.1.1, §20, §25.1 `generic-param`).
//!
//! [`Params`] is a view of the raw text; lookups scan it on demand, so a parameter nobody asks
//! about costs nothing. White space around `;` and `=` is allowed (`SEMI`, `EQUAL`), and values may
//! be tokens, hosts or quoted strings.

use std::fmt;

use crate::error::Problem;
use crate::scan::{split_outside, trim_lws};

/// One parameter: its name and its raw value (quotes kept), both trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

/// The raw parameter text, starting at the first `;` (or empty).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Params<'a> {
    /// `raw` must start with `;` (after optional white space) or be empty.
    pub(crate) fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        trim_lws(self.raw).is_empty()
    }

    /// Every parameter; malformed ones come back as `Err`.
    pub fn iter(&self) -> impl Iterator<Item = Result<Param<'a>, Problem>> + 'a {
        let body = trim_lws(self.raw);
        let body = body.strip_prefix(';').unwrap_or(body);
        let empty = trim_lws(self.raw).is_empty();
        split_outside(body, b';').filter(move |_| !empty).map(|item| {
            let item = item?;
            let (name, value) = match item.find('=') {
                Some(eq) => (trim_lws(&item[..eq]), Some(trim_lws(&item[eq + 1..]))),
                None => (item, None),
            };
            if name.is_empty() {
                return Err(Problem::EmptyParameter);
            }
            if name.bytes().any(|b| b.is_ascii_whitespace() || b == b'"') {
                return Err(Problem::BadParameter);
            }
            if let Some(v) = value {
                if v.is_empty() {
                    return Err(Problem::BadParameter);
                }
                if !v.starts_with('"') && v.bytes().any(|b| b.is_ascii_whitespace() || b == b'"') {
                    return Err(Problem::BadParameter);
                }
            }
            Ok(Param { name, value })
        })
    }

    /// Checks every parameter once.
    pub fn validate(&self) -> Result<(), Problem> {
        self.iter().try_for_each(|p| p.map(|_| ()))
    }

    /// `None` if absent, `Some(None)` if present without a value, `Some(Some(v))` otherwise.
    /// Names compare case-insensitively.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .filter_map(Result::ok)
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// The value of `name`, if present with a value.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_around_separators() {
        let p = Params::new(" ;   tag    = 1918181833n ;\r\n  secondparam ; q = 0.33");
        assert_eq!(p.value("TAG"), Some("1918181833n"));
        assert_eq!(p.get("secondparam"), Some(None));
        assert_eq!(p.value("q"), Some("0.33"));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn empty_parameters_are_errors() {
        assert_eq!(Params::new(";;;;").validate(), Err(Problem::EmptyParameter));
        assert_eq!(Params::new(";a=").validate(), Err(Problem::BadParameter));
        assert!(Params::new("").validate().is_ok());
        assert!(Params::new("").is_empty());
    }

    #[test]
    fn quoted_values_keep_separators() {
        let p = Params::new(r#";x="a;b=c";y"#);
        assert_eq!(p.value("x"), Some(r#""a;b=c""#));
        assert!(p.contains("y"));
    }
}
