//! Header names the gateway reads or writes on every proxied request, made once. A lookup or an
//! insert by `&str` parses and checks the name on each call (about 3% of a proxied request's
//! instructions before these, bench/NOTES.md).

use salvo::http::HeaderName;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");
pub const X_APIPROXY_STREAM_RESUME: HeaderName =
    HeaderName::from_static("x-apiproxy-stream-resume");
pub const X_CLAUDE_CODE_SESSION_ID: HeaderName =
    HeaderName::from_static("x-claude-code-session-id");
/// Codex's session header, spelt both ways it has been sent.
pub const SESSION_ID: HeaderName = HeaderName::from_static("session-id");
pub const SESSION_ID_UNDERSCORE: HeaderName = HeaderName::from_static("session_id");
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub const X_GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");
pub const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
pub const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");
pub const X_APIPROXY_PROVIDER: HeaderName = HeaderName::from_static("x-apiproxy-provider");
pub const X_APIPROXY_MODEL: HeaderName = HeaderName::from_static("x-apiproxy-model");
pub const X_APIPROXY_ATTEMPTS: HeaderName = HeaderName::from_static("x-apiproxy-attempts");
/// Time spent waiting on upstreams, in milliseconds (read back by the overhead histogram).
pub const X_APIPROXY_UPSTREAM_MS: HeaderName = HeaderName::from_static("x-apiproxy-upstream-ms");
pub const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
