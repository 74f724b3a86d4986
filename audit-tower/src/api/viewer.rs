//! The audit log viewer: one page, its script and its style sheet, compiled into the binary
//! and served by the audit router at `GET <prefix>/ui` (no CDN, no build step, works
//! offline).
//!
//! The page calls the same API with the caller's bearer token, kept in the tab's
//! `sessionStorage` (never in a URL); with [`AuditApi::viewer_login`](super::AuditApi::viewer_login)
//! it also offers an e-mail and password form that posts to your login route and expects
//! `{"token": …}` back. Every value from an event is rendered as text (`textContent`), never
//! as markup, and the page is served with a Content-Security-Policy that allows only its own
//! script and style (no inline script, no `eval`), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

const PAGE: &str = include_str!("viewer/index.html");
const SCRIPT: &str = include_str!("viewer/app.js");
const STYLE: &str = include_str!("viewer/app.css");
const ICON: &str = include_str!("viewer/icon.svg");

/// The policy every viewer response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The page with its API prefix and login route filled in (both set by the application,
/// escaped all the same).
pub(crate) fn page(prefix: &str, login: Option<&str>) -> Arc<str> {
    PAGE.replace("{{API}}", &attribute(prefix))
        .replace("{{LOGIN}}", &attribute(login.unwrap_or("")))
        .into()
}

fn attribute(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn respond(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `GET /ui`.
pub(crate) fn html(page: &Arc<str>) -> Response {
    respond(page.to_string(), "text/html; charset=utf-8")
}

/// `GET /ui/app.js`.
pub(crate) fn script() -> Response {
    respond(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /ui/icon.svg`.
pub(crate) fn icon() -> Response {
    respond(ICON, "image/svg+xml")
}

/// `GET /ui/app.css`.
pub(crate) fn style() -> Response {
    respond(STYLE, "text/css; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_own_files_and_escapes_what_it_is_given() {
        let p = page("/api/audit", Some("/auth/login\"><script>"));
        assert!(p.contains(r#"<script src="/api/audit/ui/app.js" defer></script>"#));
        assert!(p.contains("/auth/login&quot;&gt;&lt;script&gt;"));
        assert!(!p.contains("{{"));
        // No inline script or style: the policy forbids them.
        assert_eq!(p.matches("<script").count(), 1);
        assert!(p.contains(r#"href="/api/audit/ui/icon.svg""#));
        assert!(!p.contains("<style") && !p.contains(" style=") && !p.contains(" on"));
    }
}
