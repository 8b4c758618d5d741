//! `GET /api/records`: finished calls, newest first, with time filters and cursor paging.
//!
//! Paging is by keyset, not offset: the cursor names the last record of a page (its end time and
//! its storage sequence number) and the next page starts strictly after it in the newest-first
//! order, so records that finish while a client pages (they sort before the cursor) neither
//! shift nor repeat what it sees. The cursor is opaque to clients: `<ended_ms hex>.<seq hex>`.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use store::{CallRecord, LegMedia, RecordKey, RecordStore};

use crate::{ApiError, AppState, blocking};

pub(crate) const DEFAULT_LIMIT: usize = 100;
pub(crate) const MAX_LIMIT: usize = 1000;

/// The query string of `GET /api/records`; every field as text so a bad value gets a 400 that
/// says which parameter and why.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RecordsQuery {
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// One page.
#[derive(Debug, Serialize)]
pub(crate) struct RecordsPage {
    records: Vec<RecordView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// A call record as JSON.
#[derive(Debug, Serialize)]
pub(crate) struct RecordView {
    call_id: String,
    caller: String,
    callee: String,
    started_ms: u64,
    answered_ms: Option<u64>,
    ended_ms: u64,
    duration_s: u64,
    disposition: &'static str,
    status: u16,
    hangup: Option<String>,
    answered_by: Option<String>,
    caller_media: MediaView,
    callee_media: MediaView,
}

#[derive(Debug, Serialize)]
pub(crate) struct MediaView {
    codec: Option<String>,
    packets: u64,
    bytes: u64,
    loss_permille: Option<u32>,
    jitter_us: Option<u32>,
}

impl From<LegMedia> for MediaView {
    fn from(m: LegMedia) -> MediaView {
        MediaView {
            codec: m.codec,
            packets: m.packets,
            bytes: m.bytes,
            loss_permille: m.loss_permille,
            jitter_us: m.jitter_us,
        }
    }
}

impl From<CallRecord> for RecordView {
    fn from(r: CallRecord) -> RecordView {
        RecordView {
            duration_s: r.duration_secs(),
            disposition: r.disposition.as_str(),
            call_id: r.call_id,
            caller: r.caller,
            callee: r.callee,
            started_ms: r.started_ms,
            answered_ms: r.answered_ms,
            ended_ms: r.ended_ms,
            status: r.status,
            hangup: r.hangup,
            answered_by: r.answered_by,
            caller_media: r.caller_media.into(),
            callee_media: r.callee_media.into(),
        }
    }
}

pub(crate) fn encode_cursor(k: RecordKey) -> String {
    format!("{:x}.{:x}", k.ended_ms, k.seq)
}

pub(crate) fn decode_cursor(s: &str) -> Option<RecordKey> {
    let (ms, seq) = s.split_once('.')?;
    Some(RecordKey {
        ended_ms: u64::from_str_radix(ms, 16).ok()?,
        seq: i64::from_str_radix(seq, 16).ok()?,
    })
}

/// A time parameter: unix milliseconds (`1735689600000`) or RFC 3339
/// (`2025-01-01T00:00:00Z`, `2025-01-01T01:00:00.250+01:00`).
pub(crate) fn parse_time(s: &str) -> Option<u64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    parse_rfc3339(s)
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        millis = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_minutes = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(secs * 1000 + millis).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What a records query asks for, checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) since_ms: u64,
    pub(crate) until_ms: u64,
    pub(crate) limit: usize,
    pub(crate) after: Option<RecordKey>,
}

impl RecordsQuery {
    pub(crate) fn check(&self) -> Result<Page, ApiError> {
        let time = |name: &str, v: &Option<String>, default: u64| match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => parse_time(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name}: {s:?} is neither unix milliseconds nor an RFC 3339 time"
                ))
            }),
        };
        let limit = match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if n >= 1 => n.min(MAX_LIMIT),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "limit: {s:?} is not a number from 1 to {MAX_LIMIT}"
                    )));
                }
            },
        };
        let after = match self.cursor.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::bad_request("cursor: not a cursor this API returned (use next_cursor as it is)")
            })?),
        };
        Ok(Page {
            since_ms: time("since", &self.since, 0)?,
            until_ms: time("until", &self.until, u64::MAX)?,
            limit,
            after,
        })
    }
}

pub(crate) async fn list(
    State(app): State<AppState>,
    query: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RecordsPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page = query.check()?;
    // One more than asked tells whether there is a next page.
    let mut rows = blocking(&app, move |s| {
        s.records
            .page_records(page.since_ms, page.until_ms, page.after, page.limit + 1)
    })
    .await?;
    let next_cursor = if rows.len() > page.limit {
        rows.truncate(page.limit);
        rows.last().map(|(k, _)| encode_cursor(*k))
    } else {
        None
    };
    Ok(Json(RecordsPage {
        records: rows.into_iter().map(|(_, r)| RecordView::from(r)).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_milliseconds_or_rfc3339() {
        assert_eq!(parse_time("1735689600000"), Some(1_735_689_600_000));
        assert_eq!(parse_time("2025-01-01T00:00:00Z"), Some(1_735_689_600_000));
        assert_eq!(parse_time("2025-01-01T01:00:00.25+01:00"), Some(1_735_689_600_250));
        assert_eq!(parse_time("2024-12-31T23:30:00.123456-00:30"), Some(1_735_689_600_123));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        for bad in [
            "",
            "yesterday",
            "2025-01-01",
            "2025-13-01T00:00:00Z",
            "2025-01-01T00:00:00",
            "-5",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let k = RecordKey {
            ended_ms: 1_735_689_600_123,
            seq: 42,
        };
        assert_eq!(decode_cursor(&encode_cursor(k)), Some(k));
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(decode_cursor("12.zz"), None);
    }

    #[test]
    fn limits_default_and_cap() {
        let q = RecordsQuery::default();
        assert_eq!(q.check().map(|p| p.limit).ok(), Some(DEFAULT_LIMIT));
        let q = RecordsQuery {
            limit: Some("5000".into()),
            ..RecordsQuery::default()
        };
        assert_eq!(q.check().map(|p| p.limit).ok(), Some(MAX_LIMIT));
        let q = RecordsQuery {
            limit: Some("0".into()),
            ..RecordsQuery::default()
        };
        assert!(q.check().is_err());
    }
}
