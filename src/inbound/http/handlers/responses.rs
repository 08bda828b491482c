//! `POST /v1/responses` (SPEC 4.3): the Responses API over the chat use case. The request is mapped
//! to a chat request, and the answer to a Response object or the Responses event stream.

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::Value;

use super::chat::{served_headers, session_id, write_chat_error};
use super::{json_body, rewritten, state_or_500, stream_events};
use crate::domain::service::chat::{ChatReply, ChatRequest};
use crate::inbound::http::ApiError;
use crate::protocol::openai::ChatBody;
use crate::protocol::responses::{
    ResponsesStreamWriter, chat_request_from_responses, response_from_chat,
};

#[handler]
pub async fn create(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let session_id = match session_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    let request = match json_body(req, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error.write(res),
    };
    let chat = match chat_request_from_responses(&request) {
        Ok(chat) => chat,
        Err(e) => return ApiError::bad_request(e.message, e.param.as_deref()).write(res),
    };
    let stream = chat.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let body = match ChatBody::parse(chat.to_string().as_bytes()) {
        Ok(body) => body,
        Err(e) => return ApiError::bad_request(e.message, e.param).write(res),
    };
    match state
        .chat
        .chat(ChatRequest {
            body,
            stream,
            session_id,
            native: None,
        })
        .await
    {
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            ..
        }) => {
            served_headers(res, &served);
            let chat: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
            res.render(Json(response_from_chat(&chat, &request)));
        }
        Ok(ChatReply::Stream { served, events, .. }) => {
            // Chat events in, Responses events out; the end of the chat stream completes the response.
            stream_events(
                res,
                &served,
                rewritten(events, ResponsesStreamWriter::new(&request)),
            );
        }
        Err(error) => write_chat_error(res, error),
    }
}
