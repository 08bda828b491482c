//! The console's live feed of finished requests on a `tokio::sync::broadcast` channel: nothing is
//! kept for later subscribers, and one that falls more than [`CAPACITY`] records behind skips
//! the oldest (and is told how many). The subscriber count is kept apart in an atomic, so that
//! the request path asks "is anyone watching?" with one load and no lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::domain::console::FinishedRequest;
use crate::domain::ports::{FeedItem, RequestFeed};

/// Records a subscriber may fall behind by before it skips.
pub const CAPACITY: usize = 1024;

pub struct BroadcastFeed {
    sender: broadcast::Sender<Arc<FinishedRequest>>,
    subscribers: Arc<AtomicUsize>,
}

impl Default for BroadcastFeed {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        BroadcastFeed {
            sender,
            subscribers: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Counts one subscriber for as long as its stream lives.
struct Subscribed(Arc<AtomicUsize>);

impl Subscribed {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Subscribed(count.clone())
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RequestFeed for BroadcastFeed {
    fn watching(&self) -> bool {
        self.subscribers.load(Ordering::Relaxed) > 0
    }

    fn publish(&self, record: FinishedRequest) {
        // Nobody subscribed any more (the last one left meanwhile): nothing to do.
        let _ = self.sender.send(Arc::new(record));
    }

    fn subscribe(&self) -> BoxStream<'static, FeedItem> {
        let counted = Subscribed::new(&self.subscribers);
        let receiver = self.sender.subscribe();
        stream::unfold((receiver, counted), |(mut receiver, counted)| async move {
            let item = match receiver.recv().await {
                Ok(record) => FeedItem::Request(record),
                Err(RecvError::Lagged(skipped)) => FeedItem::Skipped(skipped),
                Err(RecvError::Closed) => return None,
            };
            Some((item, (receiver, counted)))
        })
        .boxed()
    }

    fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> FinishedRequest {
        let mut record = FinishedRequest::pending(id.into(), "/v1/chat/completions", "k".into());
        record.status = 200;
        record
    }

    #[tokio::test]
    async fn subscribers_get_what_finishes_after_they_came() {
        let feed = BroadcastFeed::default();
        assert!(!feed.watching());
        feed.publish(record("before"));
        let mut first = feed.subscribe();
        let mut second = feed.subscribe();
        assert!(feed.watching());
        assert_eq!(feed.subscribers(), 2);
        feed.publish(record("after"));
        for subscription in [&mut first, &mut second] {
            match subscription.next().await {
                Some(FeedItem::Request(r)) => assert_eq!(r.request_id, "after"),
                other => panic!("{other:?}"),
            }
        }
        drop(first);
        assert_eq!(feed.subscribers(), 1);
        drop(second);
        assert!(!feed.watching());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_skips_and_is_told() {
        let feed = BroadcastFeed::default();
        let mut slow = feed.subscribe();
        for i in 0..CAPACITY + 5 {
            feed.publish(record(&format!("r{i}")));
        }
        assert_eq!(slow.next().await, Some(FeedItem::Skipped(5)));
        match slow.next().await {
            Some(FeedItem::Request(r)) => assert_eq!(r.request_id, "r5"),
            other => panic!("{other:?}"),
        }
    }
}
