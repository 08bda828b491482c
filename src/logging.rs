//! Log set-up: level, text or JSON lines, and timestamps in `LOG_TIMEZONE` (SPEC 2.1).

use std::fmt;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::config::{LogFormat, Settings};

/// RFC 3339 timestamps with milliseconds, in the configured zone or the system's local one.
pub struct ZonedTime(pub Option<chrono_tz::Tz>);

impl FormatTime for ZonedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = chrono::Utc::now();
        let text = match self.0 {
            Some(zone) => now
                .with_timezone(&zone)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            None => now
                .with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        };
        w.write_str(&text)
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `LOG_LEVEL`.
pub fn init(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "apiproxy={0},mock_upstream={0},warn",
            settings.log_level
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(ZonedTime(settings.log_timezone));
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_in_the_configured_zone() {
        let mut text = String::new();
        ZonedTime(Some(chrono_tz::Asia::Shanghai))
            .format_time(&mut Writer::new(&mut text))
            .unwrap();
        assert!(text.ends_with("+08:00"), "{text}");
        let mut utc = String::new();
        ZonedTime(Some(chrono_tz::UTC))
            .format_time(&mut Writer::new(&mut utc))
            .unwrap();
        assert!(utc.ends_with("+00:00"), "{utc}");
    }
}
