//! The handlers of the admin API that map straight onto the running server ([`server::Control`])
//! or the subscriber store: health, users, registrations, active calls, metrics, the OpenAPI
//! document. Call records are in `records.rs`, the SIP trace in `trace.rs`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::{StoreError, Subscriber, SubscriberStore};

use crate::{ApiError, AppState, blocking};

/// Parses a JSON request body; a bad one is a 400 with `{"error": ...}` (axum's own `Json`
/// extractor answers in plain text).
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

pub(crate) async fn health(State(app): State<AppState>) -> Json<server::control::Health> {
    Json(app.control.health())
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response()
}

pub(crate) async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.control.metrics(),
    )
        .into_response()
}

/// A subscriber as the API shows it: never a password or HA1.
#[derive(Debug, Serialize)]
pub(crate) struct UserView {
    ext: String,
    domain: String,
    /// Registers and calls over TLS only.
    tls_only: bool,
    /// Where the user may register and call from (empty: anywhere).
    allowed_networks: Vec<String>,
}

impl From<&Subscriber> for UserView {
    fn from(s: &Subscriber) -> UserView {
        UserView {
            ext: s.user.clone(),
            domain: s.domain.clone(),
            tls_only: s.tls_only,
            allowed_networks: s.allowed_networks.clone(),
        }
    }
}

/// Checks a list of networks (CIDRs or addresses), dropping blank entries.
fn networks(list: Vec<String>) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = list
        .into_iter()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    server::guard::Networks::parse(&list).map_err(|e| ApiError::bad_request(format!("allowed_networks: {e}")))?;
    Ok(list)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    ext: String,
    password: String,
    #[serde(default)]
    tls_only: bool,
    #[serde(default)]
    allowed_networks: Vec<String>,
}

/// The body of `PUT /api/users/{ext}`: a new password, a new TLS-only flag, or both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    password: Option<String>,
    tls_only: Option<bool>,
    allowed_networks: Option<Vec<String>>,
}

pub(crate) async fn list_users(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let domain = app.control.domain().to_ascii_lowercase();
    let users = blocking(&app, move |s| s.subscribers.list(Some(&domain))).await?;
    let users: Vec<UserView> = users.iter().map(UserView::from).collect();
    Ok(Json(json!({ "users": users })))
}

pub(crate) async fn add_user(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let new: NewUser = parse_body(&body)?;
    let subscriber = Subscriber::new(&new.ext, app.control.domain(), &new.password)?
        .with_tls_only(new.tls_only)
        .with_allowed_networks(networks(new.allowed_networks)?);
    let view = UserView::from(&subscriber);
    blocking(&app, move |s| s.subscribers.add(&subscriber)).await?;
    tracing::info!(user = %view.ext, "user added through the admin API");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(crate) async fn set_password(
    State(app): State<AppState>,
    Path(ext): Path<String>,
    body: Bytes,
) -> Result<Json<UserView>, ApiError> {
    let change: UserChange = parse_body(&body)?;
    if change.password.is_none() && change.tls_only.is_none() && change.allowed_networks.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give password, tls_only, allowed_networks or several",
        ));
    }
    let allowed = change.allowed_networks.map(networks).transpose()?;
    let allowed_set = allowed.is_some();
    let domain = app.control.domain().to_ascii_lowercase();
    let new = change
        .password
        .as_deref()
        .map(|pw| Subscriber::new(&ext, &domain, pw))
        .transpose()?;
    let tls_only = change.tls_only;
    let user = ext.clone();
    let stored = blocking(&app, move |stores| {
        let s = &stores.subscribers;
        if let Some(new) = &new {
            s.update(new)?;
        }
        if let Some(on) = tls_only {
            s.set_tls_only(&user, &domain, on)?;
        }
        if let Some(list) = &allowed {
            s.set_allowed_networks(&user, &domain, list)?;
        }
        s.get(&user, &domain)?.ok_or(StoreError::NotFound)
    })
    .await?;
    if change.password.is_some() {
        tracing::info!(user = %ext, "password changed through the admin API");
    }
    if let Some(on) = tls_only {
        tracing::info!(user = %ext, tls_only = on, "TLS-only flag set through the admin API");
    }
    if allowed_set {
        tracing::info!(user = %ext, "allowed networks set through the admin API");
    }
    Ok(Json(UserView::from(&stored)))
}

pub(crate) async fn remove_user(State(app): State<AppState>, Path(ext): Path<String>) -> Result<StatusCode, ApiError> {
    let domain = app.control.domain().to_owned();
    let user = ext.clone();
    blocking(&app, move |s| s.subscribers.remove(&user, &domain)).await?;
    tracing::info!(user = %ext, "user removed through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct UserFilter {
    user: Option<String>,
}

pub(crate) async fn registrations(
    State(app): State<AppState>,
    filter: Result<Query<UserFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let user = filter.user.filter(|u| !u.is_empty());
    let list = app.control.registrations(user.as_deref());
    Ok(Json(json!({ "registrations": list })))
}

pub(crate) async fn remove_registration(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match app.control.remove_registration(&id).await {
        Ok(true) => {
            tracing::info!(registration = %id, "registration removed through the admin API");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(ApiError::not_found("no such registration")),
        Err(e) => Err(ApiError::internal(format!("the registration was not removed: {e}"))),
    }
}

pub(crate) async fn calls(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "calls": app.control.calls() }))
}

pub(crate) async fn hang_up(State(app): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if app.control.hang_up(&id) {
        tracing::info!(call_id = %id, "call hung up through the admin API");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such call"))
    }
}

/// `GET /api/bans`: the sources banned now by the brute-force defence.
pub(crate) async fn bans(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "bans": app.control.bans() }))
}

/// `DELETE /api/bans/{ip}`: lifts a ban (any address of a banned IPv6 /64 names it).
pub(crate) async fn unban(State(app): State<AppState>, Path(ip): Path<String>) -> Result<StatusCode, ApiError> {
    let addr: std::net::IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{ip:?} is not an IP address")))?;
    if app.control.unban(addr) {
        tracing::info!(%addr, "ban lifted through the admin API");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no ban on that address"))
    }
}
