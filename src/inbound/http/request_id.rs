//! `X-Request-Id` on every response: the client's when it sent a sane one, else a fresh one.

use salvo::http::HeaderValue;
use salvo::prelude::*;

pub const HEADER: &str = "x-request-id";

fn is_sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

#[handler]
pub async fn request_id(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{:032x}", rand::random::<u128>()));
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, value);
    }
    ctrl.call_next(req, depot, res).await;
}
