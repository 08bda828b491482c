//! Server-sent events: splitting an upstream byte stream into whole events without copying them,
//! and reading an event's `data:` field. Upstream chunks cut events anywhere; clients must only ever
//! see whole events, so the gateway can put its own error event after any of them.

use bytes::{Bytes, BytesMut};

/// Largest event the framer will hold while waiting for its end. An upstream that never ends an
/// event would otherwise grow the buffer without bound.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseFramer {
    buffer: BytesMut,
    /// Where to resume looking for a blank line, so each byte is scanned once.
    scanned: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream sent an event larger than {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a chunk and returns every event it completed, each with its terminating blank line.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, EventTooLarge> {
        self.push_bytes(Bytes::copy_from_slice(chunk))
    }

    /// [`SseFramer::push`] for a chunk already in a `Bytes`: when no event is pending, the
    /// chunk's whole events are handed out as slices of it, not copied (an upstream that sends
    /// each event in its own chunk is never copied at all).
    pub fn push_bytes(&mut self, chunk: Bytes) -> Result<Vec<Bytes>, EventTooLarge> {
        let mut events = Vec::new();
        if self.buffer.is_empty() {
            let mut start = 0;
            while let Some(end) = find_event_end(&chunk[start..], 0) {
                events.push(chunk.slice(start..start + end));
                start += end;
            }
            self.buffer.extend_from_slice(&chunk[start..]);
        } else {
            self.buffer.extend_from_slice(&chunk);
            while let Some(end) = find_event_end(&self.buffer, self.scanned) {
                events.push(self.buffer.split_to(end).freeze());
                self.scanned = 0;
            }
        }
        // A terminator may straddle chunks: re-scan the last 3 bytes next time.
        self.scanned = self.buffer.len().saturating_sub(3);
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(events)
    }

    /// What is left when the upstream ends: a final event without its blank line, if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = std::mem::take(&mut self.buffer);
        self.scanned = 0;
        let is_blank = rest.iter().all(|b| b.is_ascii_whitespace());
        (!is_blank).then(|| {
            let mut event = rest;
            event.extend_from_slice(b"\n\n");
            event.freeze()
        })
    }
}

/// The index just past the first event terminator (`\n\n`, `\r\n\r\n` or `\r\r`) at or after `from`.
fn find_event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let pos = i + memchr::memchr2(b'\n', b'\r', &buf[i..])?;
        let rest = &buf[pos..];
        if rest.starts_with(b"\n\n") || rest.starts_with(b"\r\r") {
            return Some(pos + 2);
        }
        if rest.starts_with(b"\r\n\r\n") {
            return Some(pos + 4);
        }
        if rest.starts_with(b"\n\r\n") {
            return Some(pos + 3);
        }
        i = pos + 1;
    }
    None
}

/// The `data:` payload of one event (multi-line data joined with `\n`), or `None` for events
/// without data (comments, keep-alives).
pub fn event_data(event: &[u8]) -> Option<String> {
    data_of(event).map(std::borrow::Cow::into_owned)
}

/// `event_data` without a copy when the event has one `data:` line, as almost every event does.
pub fn data_of(event: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    // The usual event, `data: <one line>\n\n`, read without walking its lines (same result as
    // below; a line ending in `\r` takes the general way).
    if let Some(rest) = event.strip_prefix(b"data:")
        && let Some(end) = memchr::memchr(b'\n', rest)
        && rest[end..].iter().all(|&b| b == b'\n')
        && !rest[..end].ends_with(b"\r")
    {
        let line = &rest[..end];
        let value = line.strip_prefix(b" ").unwrap_or(line);
        return std::str::from_utf8(value)
            .ok()
            .map(std::borrow::Cow::Borrowed);
    }
    let text = std::str::from_utf8(event).ok()?;
    let mut values = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|value| value.strip_prefix(' ').unwrap_or(value));
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(std::borrow::Cow::Borrowed(first));
    };
    let mut joined = format!("{first}\n{second}");
    for value in values {
        joined.push('\n');
        joined.push_str(value);
    }
    Some(std::borrow::Cow::Owned(joined))
}

/// The `event:` name of one event, if it has one.
pub fn event_name(event: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(event).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("event:"))
        .map(|name| name.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_of_the_one_line_fast_way_matches_the_general_way() {
        let general = |event: &[u8]| -> Option<String> {
            let text = std::str::from_utf8(event).ok()?;
            let values: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|value| value.strip_prefix(' ').unwrap_or(value))
                .collect();
            (!values.is_empty()).then(|| values.join("\n"))
        };
        let events: [&[u8]; 14] = [
            b"data: {\"a\":1}\n\n",
            b"data:{\"a\":1}\n\n",
            b"data:  two spaces\n\n",
            b"data: x\n",
            b"data: x",
            b"data: x\r\n\r\n",
            b"data: x\r",
            b"data: a\rb\n\n",
            b"data: a\ndata: b\n\n",
            b"data: a\n\ndata: b\n\n",
            b"data:\n\n",
            b"event: e\ndata: x\n\n",
            b": comment\n\n",
            b"data: \xff\n\n",
        ];
        for event in events {
            assert_eq!(
                data_of(event).map(|d| d.into_owned()),
                general(event),
                "{:?}",
                String::from_utf8_lossy(event)
            );
        }
    }

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut framer = SseFramer::new();
        assert!(framer.push(b"data: {\"a\"").unwrap().is_empty());
        assert!(framer.push(b":1}\n").unwrap().is_empty());
        let events = framer.push(b"\ndata: [DONE]\n\n").unwrap();
        assert_eq!(
            events,
            vec![
                Bytes::from_static(b"data: {\"a\":1}\n\n"),
                Bytes::from_static(b"data: [DONE]\n\n")
            ]
        );
        assert_eq!(framer.finish(), None);
    }

    #[test]
    fn crlf_terminators_and_a_final_unterminated_event_are_handled() {
        let mut framer = SseFramer::new();
        let events = framer.push(b"data: x\r\n\r\ndata: y\r").unwrap();
        assert_eq!(events, vec![Bytes::from_static(b"data: x\r\n\r\n")]);
        assert_eq!(
            framer.push(b"\n\r\n").unwrap(),
            vec![Bytes::from_static(b"data: y\r\n\r\n")]
        );
        framer.push(b"data: tail").unwrap();
        assert_eq!(framer.finish(), Some(Bytes::from_static(b"data: tail\n\n")));
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream: &[u8] =
            b"event: a\ndata: 1\n\n: ping\n\ndata: 2\ndata: 3\r\n\r\ndata: [DONE]\n\n";
        let mut whole = SseFramer::new();
        let expected = whole.push(stream).unwrap();
        for cut in 0..stream.len() {
            let mut framer = SseFramer::new();
            let mut got = framer.push(&stream[..cut]).unwrap();
            got.extend(framer.push(&stream[cut..]).unwrap());
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn whole_events_in_a_chunk_are_not_copied() {
        let chunk = Bytes::from_static(b"data: 1\n\ndata: 2\n\ndata: 3");
        let mut framer = SseFramer::new();
        let events = framer.push_bytes(chunk.clone()).unwrap();
        assert_eq!(events, [&b"data: 1\n\n"[..], &b"data: 2\n\n"[..]]);
        assert_eq!(events[0].as_ptr(), chunk.as_ptr());
        assert_eq!(events[1].as_ptr(), chunk[9..].as_ptr());
        // The pending third event is completed in the framer's own buffer.
        let events = framer.push_bytes(Bytes::from_static(b"\n\n")).unwrap();
        assert_eq!(events, [&b"data: 3\n\n"[..]]);
        assert_eq!(framer.finish(), None);
    }

    #[test]
    fn data_and_names_are_read() {
        assert_eq!(
            event_data(b"event: e\ndata: a\ndata:b\n\n").as_deref(),
            Some("a\nb")
        );
        assert_eq!(event_data(b": comment\n\n"), None);
        assert_eq!(
            event_name(b"event: message_start\ndata: {}\n\n"),
            Some("message_start")
        );
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut framer = SseFramer::new();
        let chunk = vec![b'a'; 1024 * 1024];
        let mut result = Ok(Vec::new());
        for _ in 0..17 {
            result = framer.push(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(EventTooLarge));
    }
}
