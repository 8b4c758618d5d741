//! The SIP trace over HTTP: recent dialogs (`GET /api/trace`, optionally one user's), the
//! messages of one Call-ID as JSON (`GET /api/trace/{call_id}`, what the console's ladder diagram
//! draws) and as a pcap file (`GET /api/trace/{call_id}.pcap`, for Wireshark, tshark, sngrep).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sip_trace::{CallSummary, Direction, Proto, TracedMessage};

use crate::{ApiError, AppState};

const DEFAULT_DIALOGS: usize = 50;
const MAX_DIALOGS: usize = 1000;

#[derive(Deserialize)]
pub(crate) struct DialogsQuery {
    user: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct Dialogs {
    /// Whether the server keeps a trace at all (`--trace-capacity 0` turns it off).
    enabled: bool,
    dialogs: Vec<CallSummary>,
}

pub(crate) async fn dialogs(
    State(app): State<AppState>,
    query: Result<Query<DialogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Dialogs>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_DIALOGS).clamp(1, MAX_DIALOGS);
    let Some(ring) = app.control.trace() else {
        return Ok(Json(Dialogs {
            enabled: false,
            dialogs: Vec::new(),
        }));
    };
    let dialogs = match q.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => ring.search_user(user, limit),
        None => ring.recent(limit),
    };
    Ok(Json(Dialogs { enabled: true, dialogs }))
}

/// One traced message as JSON.
#[derive(Debug, Serialize)]
pub(crate) struct MessageView {
    seq: u64,
    at_us: u64,
    direction: Direction,
    proto: Proto,
    local: SocketAddr,
    remote: SocketAddr,
    first_line: String,
    method: Option<String>,
    status: Option<u16>,
    cseq_method: Option<String>,
    from_user: Option<String>,
    to_user: Option<String>,
    /// The whole message (lossy UTF-8).
    text: String,
}

impl From<TracedMessage> for MessageView {
    fn from(m: TracedMessage) -> MessageView {
        MessageView {
            seq: m.seq,
            at_us: m.at_us,
            direction: m.direction,
            proto: m.proto,
            local: m.local,
            remote: m.remote,
            text: String::from_utf8_lossy(&m.payload).into_owned(),
            first_line: m.summary.first_line,
            method: m.summary.method,
            status: m.summary.status,
            cseq_method: m.summary.cseq_method,
            from_user: m.summary.from_user,
            to_user: m.summary.to_user,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct CallTrace {
    call_id: String,
    messages: Vec<MessageView>,
}

/// `GET /api/trace/{call_id}` and `GET /api/trace/{call_id}.pcap`: one route, since a path
/// segment cannot be split in two parameters. A Call-ID that itself ends in `.pcap` is only
/// reachable as pcap.
pub(crate) async fn call(State(app): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let ring = app
        .control
        .trace()
        .ok_or_else(|| ApiError::not_found("the SIP trace is off"))?;
    if let Some(call_id) = name.strip_suffix(".pcap") {
        let messages = ring.call(call_id);
        if messages.is_empty() {
            return Err(ApiError::not_found("no traced message with this Call-ID"));
        }
        let mut file = Vec::new();
        sip_trace::pcap::write(&messages, &mut file).map_err(|e| ApiError::internal(format!("pcap: {e}")))?;
        let disposition = format!("attachment; filename=\"{}.pcap\"", file_name(call_id));
        return Ok((
            [
                (header::CONTENT_TYPE, "application/vnd.tcpdump.pcap".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            file,
        )
            .into_response());
    }
    let messages = ring.call(&name);
    if messages.is_empty() {
        return Err(ApiError::not_found("no traced message with this Call-ID"));
    }
    Ok(Json(CallTrace {
        call_id: name,
        messages: messages.into_iter().map(MessageView::from).collect(),
    })
    .into_response())
}

/// A Call-ID made safe for a file name in a header: other characters than letters, digits,
/// `.`, `-`, `_` become `_`; at most 100 characters.
fn file_name(call_id: &str) -> String {
    let name: String = call_id
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() { "trace".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_header_safe() {
        assert_eq!(
            file_name("a84b4c76e66710@pc33.example.com"),
            "a84b4c76e66710_pc33.example.com"
        );
        assert_eq!(file_name("x\"; evil=\r\n"), "x___evil___");
        assert_eq!(file_name(""), "trace");
    }
}
