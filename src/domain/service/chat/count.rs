//! Counting a request's input tokens (SPEC 4.8, `POST /v1/messages/count_tokens`): the candidates
//! are asked in failover order, and the first whose vendor has a counter answers. It is a read
//! with no effect, so it takes no QPS slot and records no health: a failed count only means the
//! caller estimates.

use tokio::time::timeout;

use super::{ChatError, ChatRequest, ChatService, upstream_request};
use crate::domain::service::routing::RouteRequest;

impl ChatService {
    /// The input tokens of `request` as counted by the first candidate whose vendor counts tokens,
    /// or `None` when no candidate can (or every counter failed): the caller then estimates.
    pub async fn count_tokens(&self, request: &ChatRequest) -> Result<Option<u64>, ChatError> {
        let route = RouteRequest {
            session_id: request.session_id.clone(),
            ..RouteRequest::default()
        };
        if let Some(key) = &request.caller
            && !key.allows_model(request.body.model())
        {
            let refusal = super::KeyRefusal::ModelNotAllowed(request.body.model().to_string());
            return Err(ChatError::KeyRefused(refusal));
        }
        let plan = self.planner.plan(request.body.model(), &route).await?;
        for candidate in plan
            .order
            .iter()
            .filter(|c| c.provider.vendor.counts_tokens())
        {
            let call = self
                .upstream
                .count_tokens(&candidate.provider, upstream_request(request, candidate));
            match timeout(self.settings.timeouts.first_byte, call).await {
                Ok(Ok(tokens)) => return Ok(Some(tokens)),
                Ok(Err(error)) => {
                    tracing::debug!(provider = %candidate.provider.id, %error, "token count failed");
                }
                Err(_) => {
                    tracing::debug!(provider = %candidate.provider.id, "token count timed out");
                }
            }
        }
        Ok(None)
    }
}
