//! The times the CLI takes, as a person writes them: durations such as `5m`, `30s`,
//! `1h 30m` or `PT5M`, and points in time as a local date-time (`2026-12-01T03:00`),
//! RFC 3339 with an offset (`2026-12-01T03:00:00+01:00`, `…Z`) or epoch milliseconds.
//! Both become the milliseconds the wire contract speaks. Parsing is jiff's; only the
//! choice of formats and the error messages are ours.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};

/// A positive duration, in milliseconds. A bare number is refused: `5` could mean
/// seconds or milliseconds, so the unit must be said.
pub fn duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} has no unit: write e.g. {text}s, {text}m or {text}ms"));
    }
    let duration = parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration (e.g. 500ms, 30s, 5m, 1h 30m, 2d): {error}"))?;
    if duration <= SignedDuration::ZERO {
        return Err(format!("{text:?}: the duration must be more than zero"));
    }
    let ms = duration.as_millis();
    if ms == 0 {
        return Err(format!("{text:?}: the duration must be at least 1ms"));
    }
    u64::try_from(ms).ok().filter(|&ms| ms <= i64::MAX as u64).ok_or_else(|| format!("{text:?} is too long"))
}

/// Days are 24 hours here: a delay counts elapsed time, not calendar days.
fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    if let Ok(duration) = text.parse::<SignedDuration>() {
        return Ok(duration);
    }
    let span: Span = text.parse().map_err(|error: jiff::Error| error.to_string())?;
    span.to_duration(SpanRelativeTo::days_are_24_hours()).map_err(|error| error.to_string())
}

/// A point in time, in epoch milliseconds: digits only are epoch ms; a date-time with
/// an offset or `Z` is that instant; one without is local time (`TZ`, else the system's
/// zone). A local time that falls in a DST gap or repeat is resolved as jiff's
/// "compatible" rule says: the later time in a gap, the earlier in a repeat.
pub fn time_ms(text: &str) -> Result<u64, String> {
    time_ms_in(text, &TimeZone::system())
}

fn time_ms_in(text: &str, zone: &TimeZone) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().map_err(|error| format!("{text:?}: {error}"));
    }
    let timestamp = match text.parse::<Timestamp>() {
        Ok(timestamp) => timestamp,
        Err(_) => {
            let local: DateTime = text.parse().map_err(|error: jiff::Error| {
                format!(
                    "{text:?} is not a time: write a local date-time (2026-12-01T03:00), RFC 3339 with an \
                     offset (2026-12-01T03:00:00+01:00) or epoch milliseconds ({error})"
                )
            })?;
            zone.to_timestamp(local).map_err(|error| format!("{text:?}: {error}"))?
        }
    };
    u64::try_from(timestamp.as_millisecond()).map_err(|_| format!("{text:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_come_out_in_milliseconds() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1h 30m", 5_400_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("1.5s", 1_500),
            ("PT5M", 300_000),
            ("10 minutes", 600_000),
        ] {
            assert_eq!(duration_ms(text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        assert!(duration_ms("5").unwrap_err().contains("no unit"));
        assert!(duration_ms("5x").unwrap_err().contains("not a duration"));
        assert!(duration_ms("").unwrap_err().contains("not a duration"));
        assert!(duration_ms("0s").unwrap_err().contains("more than zero"));
        assert!(duration_ms("-5s").is_err());
        assert!(duration_ms("1us").unwrap_err().contains("at least 1ms"));
    }

    #[test]
    fn times_are_epoch_ms_rfc_3339_or_local() {
        // A fixed UTC+1 (Berlin in December), so that the test needs no time zone data.
        let berlin = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(time_ms_in("1798765200000", &berlin), Ok(1_798_765_200_000));
        // 2026-12-01T03:00Z
        assert_eq!(time_ms_in("2026-12-01T03:00:00Z", &berlin), Ok(1_796_094_000_000));
        assert_eq!(time_ms_in("2026-12-01T04:00:00+01:00", &berlin), Ok(1_796_094_000_000));
        assert_eq!(time_ms_in("2026-12-01T04:00", &berlin), Ok(1_796_094_000_000));
        assert_eq!(time_ms_in("2026-12-01 04:00:00", &berlin), Ok(1_796_094_000_000));
        assert_eq!(time_ms_in("2026-12-01T03:00", &TimeZone::UTC), Ok(1_796_094_000_000));
    }

    #[test]
    fn bad_times_say_what_to_write() {
        let error = time_ms_in("tomorrow", &TimeZone::UTC).unwrap_err();
        assert!(error.contains("local date-time") && error.contains("epoch milliseconds"), "{error}");
        assert!(time_ms_in("2026-13-01T03:00", &TimeZone::UTC).is_err());
        assert!(time_ms_in("1969-12-31T23:00:00Z", &TimeZone::UTC).unwrap_err().contains("before 1970"));
    }
}
