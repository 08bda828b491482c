//! The operators' console at `/ui`: three static files (page, script, style sheet) built into the
//! binary. They hold no data and are open like `/docs`; every figure the page shows comes from
//! admin endpoints it calls with the token the operator types in.

use salvo::http::HeaderValue;
use salvo::oapi::endpoint;
use salvo::prelude::*;

const PAGE: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// No inline script or style, nothing from another origin, no framing: the page only runs its own
/// script and only talks to this gateway, so injected markup could not run or exfiltrate the token.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Writes `body` as `content_type` with the console's headers. `no-cache` (revalidate, not "never
/// store") keeps a browser from running an old script against a newer gateway after an upgrade.
fn serve(res: &mut Response, content_type: &'static str, body: &'static str) {
    let headers = res.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    res.body(body);
}

/// The operators' console
///
/// Open (no token): a self-contained HTML page (no CDN). It asks for the admin token and keeps it
/// in the tab's session storage; its data comes from the admin endpoints.
#[endpoint(
    operation_id = "getConsole",
    tags("observability"),
    responses(
        (status_code = 200, description = "The HTML page.", content(("text/html" = String))),
    ),
)]
pub async fn page(res: &mut Response) {
    serve(res, "text/html; charset=utf-8", PAGE);
}

/// The console's script
///
/// Open (no token): the JavaScript of `/ui`.
#[endpoint(
    operation_id = "getConsoleScript",
    tags("observability"),
    responses(
        (status_code = 200, description = "The script.", content(("text/javascript" = String))),
    ),
)]
pub async fn script(res: &mut Response) {
    serve(res, "text/javascript; charset=utf-8", SCRIPT);
}

/// The console's style sheet
///
/// Open (no token): the CSS of `/ui`.
#[endpoint(
    operation_id = "getConsoleStyle",
    tags("observability"),
    responses(
        (status_code = 200, description = "The style sheet.", content(("text/css" = String))),
    ),
)]
pub async fn style(res: &mut Response) {
    serve(res, "text/css; charset=utf-8", STYLE);
}
