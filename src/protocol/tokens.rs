//! Token counts as vendors write them, read leniently: one odd field (a float, a string, null, an
//! object where a number belongs) counts as absent instead of costing the whole usage report,
//! which budgets and cost depend on.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// An answer body that is not JSON.
#[derive(Debug)]
pub struct NotJson;

/// A token count: an integer, or a whole number written as a float or a string; `None` for
/// anything else (null, a negative number, a boolean, a list, an object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count(pub(crate) Option<u64>);

impl Count {
    /// The count, 0 when absent.
    pub(crate) fn get(self) -> u64 {
        self.0.unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CountVisitor).map(Count)
    }
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a token count")
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).ok())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        let whole = v.is_finite() && v >= 0.0 && v < u64::MAX as f64;
        Ok(whole.then_some(v.round() as u64))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.trim().parse().ok())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(CountVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| None)
    }
}

/// OpenAI's usage details objects (`prompt_tokens_details`, `completion_tokens_details` and the
/// Responses API's `input_tokens_details`, `output_tokens_details`): the counts the gateway reads
/// from them. Null or a value that is not an object reads as no details.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Details {
    pub(crate) cached_tokens: Count,
    pub(crate) reasoning_tokens: Count,
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DetailsVisitor)
    }
}

struct DetailsVisitor;

impl<'de> Visitor<'de> for DetailsVisitor {
    type Value = Details;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a usage details object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Details, A::Error> {
        let mut details = Details::default();
        #[derive(serde::Deserialize)]
        #[serde(field_identifier, rename_all = "snake_case")]
        enum Field {
            CachedTokens,
            ReasoningTokens,
            #[serde(other)]
            Other,
        }
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::CachedTokens => details.cached_tokens = map.next_value()?,
                Field::ReasoningTokens => details.reasoning_tokens = map.next_value()?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(details)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Details, D::Error> {
        d.deserialize_any(DetailsVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Details, A::Error> {
        skip_seq(seq).map(|()| Details::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Details, E> {
        Ok(Details::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Details, E> {
        Ok(Details::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Details, E> {
        Ok(Details::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Details, E> {
        Ok(Details::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Details, E> {
        Ok(Details::default())
    }
    fn visit_unit<E>(self) -> Result<Details, E> {
        Ok(Details::default())
    }
    fn visit_none<E>(self) -> Result<Details, E> {
        Ok(Details::default())
    }
}

/// Reads a whole answer that should be a JSON object: `Ok(None)` for valid JSON of another shape
/// (serde would read a list into a struct by position), `Err` when it is not JSON at all.
pub(crate) fn read_object<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<Option<T>, NotJson> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let result = if first == Some(&b'{') {
        serde_json::from_slice::<T>(body).map(Some)
    } else {
        serde_json::from_slice::<IgnoredAny>(body).map(|_| None)
    };
    match result {
        Ok(value) => Ok(value),
        Err(e) if e.is_data() => Ok(None),
        Err(_) => Err(NotJson),
    }
}

/// Reads one stream event's data that should be a JSON object; `None` for anything else.
pub(crate) fn read_event_object<T: serde::de::DeserializeOwned>(data: &str) -> Option<T> {
    let data = data.trim();
    data.starts_with('{')
        .then(|| serde_json::from_str(data).ok())
        .flatten()
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_leniently() {
        let read = |text: &str| serde_json::from_str::<Count>(text).unwrap().0;
        assert_eq!(read("12"), Some(12));
        assert_eq!(read("12.0"), Some(12));
        assert_eq!(read("\" 12 \""), Some(12));
        assert_eq!(read("-3"), None);
        assert_eq!(read("null"), None);
        assert_eq!(read("true"), None);
        assert_eq!(read("[1,2]"), None);
        assert_eq!(read("{\"a\":{\"b\":1}}"), None);
    }

    #[test]
    fn details_keep_the_counts_the_gateway_reads() {
        let read = |text: &str| serde_json::from_str::<Details>(text).unwrap();
        let details = read(r#"{"cached_tokens":7,"audio_tokens":0,"reasoning_tokens":"3"}"#);
        assert_eq!(details.cached_tokens.0, Some(7));
        assert_eq!(details.reasoning_tokens.0, Some(3));
        assert_eq!(read("null"), Details::default());
        assert_eq!(read("[{\"cached_tokens\":1}]"), Details::default());
        assert_eq!(read("5"), Details::default());
    }
}
