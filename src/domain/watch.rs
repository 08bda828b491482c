//! A proxied request someone is watching for the console's live feed: every part of the
//! gateway that learns something about the request fills its part in, and the record is
//! published once, when the last of them lets go.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::console::{FinishedRequest, TokenCounts};
use super::ports::{Clock, RequestFeed};
use super::usage::Usage;

/// Who answered a watched request, read from its answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answered {
    pub status: u16,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub attempts: u32,
}

/// A proxied request someone is watching. It exists only while the feed has subscribers (the
/// common request builds none). Every part of the gateway that learns something about the
/// request holds an `Arc` of it and fills its part in (the HTTP adapter the status and who
/// answered, the chat use case the logical model, the metering its tokens and cost); the record
/// is published when the last holder lets go, which for a stream is when the stream ends.
pub struct Watch {
    feed: Arc<dyn RequestFeed>,
    clock: Arc<dyn Clock>,
    started: Instant,
    record: Mutex<FinishedRequest>,
}

impl Watch {
    pub fn new(
        feed: Arc<dyn RequestFeed>,
        clock: Arc<dyn Clock>,
        request_id: String,
        endpoint: &'static str,
        key: String,
    ) -> Arc<Self> {
        Arc::new(Watch {
            feed,
            clock,
            started: Instant::now(),
            record: Mutex::new(FinishedRequest::pending(request_id, endpoint, key)),
        })
    }

    fn with(&self, change: impl FnOnce(&mut FinishedRequest)) {
        // A panic elsewhere while holding the lock leaves a record still worth showing.
        let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut record);
    }

    /// The logical model the request was routed as, and whether it streams.
    pub fn routed(&self, logical_model: &str, stream: bool) {
        self.with(|r| {
            r.logical_model = Some(logical_model.to_string());
            r.stream = stream;
        });
    }

    /// The answer's status and who gave it.
    pub fn answered(&self, answer: Answered) {
        self.with(|r| {
            r.status = answer.status;
            r.provider = answer.provider;
            r.model = answer.model;
            r.attempts = answer.attempts;
            // Every attempt after the first moved the request on to another candidate.
            r.failovers = answer.attempts.saturating_sub(1);
        });
    }

    /// What the metering settled: the usage the upstream reported, if it did, and the cost
    /// charged (`None` when the upstream has no price).
    pub fn settled(&self, usage: Option<&Usage>, cost_nano_usd: Option<u64>) {
        self.with(|r| {
            r.tokens = usage.map(|u| TokenCounts {
                prompt: u.prompt_tokens,
                completion: u.completion_tokens,
            });
            r.cost_usd = cost_nano_usd.map(|nano| nano as f64 / 1e9);
        });
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut record = std::mem::replace(
            self.record
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
            FinishedRequest::pending(String::new(), "", String::new()),
        );
        record.latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        record.at = (self.clock.now() * 1000.0).max(0.0) as u64;
        self.feed.publish(record);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream::BoxStream;

    use super::*;
    use crate::domain::ports::FeedItem;

    /// Keeps what is published.
    #[derive(Default)]
    struct Kept(Mutex<Vec<FinishedRequest>>);

    impl RequestFeed for Kept {
        fn watching(&self) -> bool {
            true
        }
        fn publish(&self, record: FinishedRequest) {
            self.0.lock().unwrap().push(record);
        }
        fn subscribe(&self) -> BoxStream<'static, FeedItem> {
            Box::pin(futures_util::stream::empty())
        }
        fn subscribers(&self) -> usize {
            1
        }
    }

    struct Fixed;

    impl Clock for Fixed {
        fn now(&self) -> f64 {
            1_765_130_000.5
        }
    }

    #[test]
    fn the_record_is_published_once_when_the_last_holder_lets_go() {
        let kept = Arc::new(Kept::default());
        let watch = Watch::new(
            kept.clone(),
            Arc::new(Fixed),
            "req_1".into(),
            "/v1/chat/completions",
            "team-a".into(),
        );
        let in_the_stream = watch.clone();
        watch.routed("gpt", true);
        watch.answered(Answered {
            status: 200,
            provider: Some("openai".into()),
            model: Some("gpt-4o".into()),
            attempts: 2,
        });
        drop(watch);
        assert!(kept.0.lock().unwrap().is_empty(), "the stream still runs");
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 20,
            ..Usage::default()
        };
        in_the_stream.settled(Some(&usage), Some(120_000));
        drop(in_the_stream);
        let published = kept.0.lock().unwrap();
        assert_eq!(published.len(), 1);
        let record = &published[0];
        assert_eq!(record.at, 1_765_130_000_500);
        assert_eq!(record.request_id, "req_1");
        assert_eq!(record.key, "team-a");
        assert_eq!(record.logical_model.as_deref(), Some("gpt"));
        assert!(record.stream);
        assert_eq!((record.attempts, record.failovers), (2, 1));
        assert_eq!(
            record.tokens,
            Some(TokenCounts {
                prompt: 10,
                completion: 20
            })
        );
        assert_eq!(record.cost_usd, Some(0.00012));
        assert!(record.latency_ms >= 0.0);
    }
}
