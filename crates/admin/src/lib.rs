//! # admin — switchboard's operator surface over HTTP
//!
//! One axum router on the `--http-listen` socket:
//!
//! - the JSON admin API under `/api/` (users, registrations, active calls, call records, the SIP
//!   trace, bans, health), described by the hand-written OpenAPI document `openapi.json` served at
//!   `/api/openapi.json`;
//! - `/metrics`, the server's Prometheus text;
//! - the web console at `/` (`console.rs`: plain HTML, one script, one stylesheet, all built into
//!   the binary).
//!
//! This module owns the router, the bearer-token check and the error shape (`{"error": "..."}`);
//! `api.rs` owns the handlers, `records.rs` the call-record query and its cursor, `trace.rs` the
//! SIP trace views and pcap export.
//!
//! The running server is reached through [`server::Control`]; users and call records through the
//! stores the server opened (embedded, or shared by several nodes), whose calls block and so run
//! on tokio's blocking pool.

mod api;
mod console;
mod records;
mod trace;

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};

/// The OpenAPI 3.0 document of the API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// How the admin API is protected.
#[derive(Clone, Default)]
pub struct AdminSettings {
    /// When set, every `/api/*` and `/metrics` request needs `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminSettings {
    /// The token is a secret: it never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// What every handler shares.
pub(crate) struct App {
    pub(crate) control: server::Control,
    /// The server's stores (`None` when it runs without a data directory).
    pub(crate) store: Option<store::Stores>,
    token: Option<String>,
}

pub(crate) type AppState = Arc<App>;

/// Serves the admin API, metrics and console on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: server::Control,
    settings: AdminSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = router(control, settings).await?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// The whole router, for [`serve`] or for serving it some other way, on the server's stores.
pub async fn router(control: server::Control, settings: AdminSettings) -> io::Result<Router> {
    let store = control.stores();
    let state: AppState = Arc::new(App {
        control,
        store,
        token: settings.token.filter(|t| !t.is_empty()),
    });
    let mut protected = Router::new();
    for (_, path, method_router) in routes() {
        protected = protected.route(path, method_router);
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Ok(Router::new()
        .merge(protected)
        .merge(console::routes())
        .fallback(no_route)
        .with_state(state))
}

/// Every API route: method, path (axum syntax), handler. The OpenAPI document describes
/// exactly these (a test checks), plus `GET /api/trace/{call_id}.pcap`, which the
/// `/api/trace/{call_id}` route serves.
fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/api/health", get(api::health)),
        ("GET", "/api/openapi.json", get(api::openapi)),
        ("GET", "/api/users", get(api::list_users)),
        ("POST", "/api/users", post(api::add_user)),
        ("PUT", "/api/users/{ext}", put(api::set_password)),
        ("DELETE", "/api/users/{ext}", delete(api::remove_user)),
        ("GET", "/api/registrations", get(api::registrations)),
        ("DELETE", "/api/registrations/{id}", delete(api::remove_registration)),
        ("GET", "/api/calls", get(api::calls)),
        ("DELETE", "/api/calls/{id}", delete(api::hang_up)),
        ("GET", "/api/bans", get(api::bans)),
        ("DELETE", "/api/bans/{ip}", delete(api::unban)),
        ("GET", "/api/records", get(records::list)),
        ("GET", "/api/trace", get(trace::dialogs)),
        ("GET", "/api/trace/{call_id}", get(trace::call)),
        ("GET", "/metrics", get(api::metrics)),
    ]
}

/// The (method, path) of every route [`router`] serves besides the console's.
pub fn route_list() -> Vec<(&'static str, &'static str)> {
    routes().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// 401 unless the request carries the configured bearer token.
async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("invalid bearer token"),
        None => unauthorized("this API needs an Authorization: Bearer token"),
    }
}

fn unauthorized(why: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, why).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"switchboard\""),
    );
    r
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// An error answer: a status and `{"error": "why"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        tracing::error!(error = %message, "admin API request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> ApiError {
        match e {
            store::StoreError::Exists => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            store::StoreError::NotFound => ApiError::not_found(e.to_string()),
            store::StoreError::Invalid(why) => ApiError::bad_request(why),
            store::StoreError::Backend(_) => ApiError::internal(e.to_string()),
        }
    }
}

/// Runs a blocking store call on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&store::Stores) -> Result<T, store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let Some(store) = app.store.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server runs without a data directory",
        ));
    };
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::internal(format!("store task: {e}")))?
        .map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn settings_debug_hides_the_token() {
        let s = AdminSettings {
            token: Some("hunter2".into()),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
