//! The web console: one HTML page, one script and one stylesheet, compiled into the binary
//! (no CDN, no build step). The page loads without the API token; its script asks for the token
//! when the API answers 401 and keeps it in `sessionStorage`.
//!
//! The Content-Security-Policy allows only these same-origin files: no inline script, so even a
//! mistake in the script that put network text into markup could not run it.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub(crate) const INDEX_HTML: &str = include_str!("../assets/index.html");
pub(crate) const CONSOLE_JS: &str = include_str!("../assets/console.js");
pub(crate) const CONSOLE_CSS: &str = include_str!("../assets/console.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route(
            "/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route(
            "/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}
