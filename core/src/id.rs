//! Job identity.

use std::fmt;
use std::str::FromStr;

/// A job's identity: 128 bits from the [`crate::ports::IdGen`] port, shown as a UUID.
///
/// Ids carry no order that the engine relies on; order comes from [`crate::Job::seq`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct JobId(u128);

impl JobId {
    pub const fn from_u128(value: u128) -> JobId {
        JobId(value)
    }

    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_u128(self.0).hyphenated(), f)
    }
}

/// The text given for a job id was not a UUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobIdParseError;

impl fmt::Display for JobIdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a job id (expected a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8)")
    }
}

impl std::error::Error for JobIdParseError {}

impl FromStr for JobId {
    type Err = JobIdParseError;

    fn from_str(text: &str) -> Result<JobId, JobIdParseError> {
        // Only the canonical hyphenated form: one spelling per id keeps ids usable as keys
        // in logs, file names and SQL without normalisation at every edge.
        if text.len() != 36 {
            return Err(JobIdParseError);
        }
        uuid::Uuid::try_parse(text).map(|uuid| JobId(uuid.as_u128())).map_err(|_| JobIdParseError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_round_trips_through_text() {
        let id = JobId::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
        let text = id.to_string();
        assert_eq!(text, "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(text.parse::<JobId>(), Ok(id));
    }

    #[test]
    fn job_id_rejects_other_spellings() {
        assert!("67e5504410b1426f9247bb680e5fe0c8".parse::<JobId>().is_err());
        assert!("".parse::<JobId>().is_err());
        assert!("../../etc/passwd".parse::<JobId>().is_err());
        assert!("67e55044-10b1-426f-9247-bb680e5fe0cZ".parse::<JobId>().is_err());
    }
}
