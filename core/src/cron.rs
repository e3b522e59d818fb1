//! Recurring slots: a five-field cron expression read in an IANA time zone.
//!
//! Parsing and slot arithmetic come from `croner` (OCPS and Vixie cron rules, including
//! what happens in a DST gap or a repeated hour) over `chrono-tz`, whose zone database is
//! compiled in: nothing here reads a clock or a file, so the same inputs always give the
//! same slots.
//!
//! DST, as croner documents it: a fixed-time slot (numbers in the minute and hour fields)
//! that falls in a gap fires at the first minute after the gap, and one in a repeated hour
//! fires once, on its first pass; a slot with `*` or a step in the minute or hour field
//! is skipped in a gap and fires on both passes of a repeated hour.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::limits;

/// A parsed schedule: when its slots are.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

/// Why an expression or a zone was refused.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ScheduleError {
    Cron(String),
    TimeZone(String),
}

impl Schedule {
    /// `cron` must have exactly five fields (minute, hour, day of month, month, day of
    /// week); `timezone` is an IANA name such as `Europe/Berlin`, or `UTC`.
    pub fn parse(cron: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        if cron.len() > limits::CRON_CHARS_MAX {
            return Err(ScheduleError::Cron(format!("at most {} characters", limits::CRON_CHARS_MAX)));
        }
        let fields = cron.split_whitespace().count();
        if fields != 5 {
            return Err(ScheduleError::Cron(format!("five fields (m h dom mon dow), not {fields}")));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(cron).map_err(|error| ScheduleError::Cron(error.to_string()))?;
        let zone =
            Tz::from_str(timezone).map_err(|_| ScheduleError::TimeZone(format!("unknown time zone {timezone:?}")))?;
        Ok(Schedule { cron, zone })
    }

    /// The first slot strictly after `after_ms` (epoch ms), or `None` when there is none
    /// before the year 5000 (an expression such as `0 0 30 2 *`).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after = self.at(after_ms)?;
        let next = self.cron.find_next_occurrence(&after, false).ok()?;
        epoch_ms(&next)
    }

    /// The latest slot at or before `at_ms`.
    pub fn latest_at_or_before(&self, at_ms: u64) -> Option<u64> {
        let at = self.at(at_ms)?;
        let previous = self.cron.find_previous_occurrence(&at, true).ok()?;
        epoch_ms(&previous)
    }

    fn at(&self, epoch_ms: u64) -> Option<DateTime<Tz>> {
        let epoch_ms = i64::try_from(epoch_ms).ok()?;
        let utc = Utc.timestamp_millis_opt(epoch_ms).single()?;
        Some(utc.with_timezone(&self.zone))
    }
}

fn epoch_ms(at: &DateTime<Tz>) -> Option<u64> {
    u64::try_from(at.timestamp_millis()).ok()
}
