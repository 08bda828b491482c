//! The byte strings looked for in every stream event before any JSON is parsed, each with its
//! searcher built once.

use memchr::memmem;

/// A byte string searched for in every stream event, its searcher built once (a one-shot
/// `memmem::find` builds one per call, which costs more than the search in a short event).
pub(crate) type Needle = std::sync::LazyLock<memmem::Finder<'static>>;

/// `"usage":`, the OpenAI and Responses usage field.
pub(crate) static USAGE_FIELD: Needle = Needle::new(|| memmem::Finder::new(b"\"usage\":"));
/// `"usage"`, Anthropic's (its events may put a space before the colon).
pub(crate) static USAGE_NAME: Needle = Needle::new(|| memmem::Finder::new(b"\"usage\""));
/// `"usageMetadata"`, Gemini's.
pub(crate) static USAGE_METADATA: Needle =
    Needle::new(|| memmem::Finder::new(b"\"usageMetadata\""));

/// Whether `haystack` holds `needle`: the cheap test that spares most stream events a JSON parse.
pub(crate) fn mentions(haystack: &[u8], needle: &Needle) -> bool {
    needle.find(haystack).is_some()
}
