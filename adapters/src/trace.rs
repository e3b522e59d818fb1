//! W3C Trace Context ids of a job (API.md "Trace context"), as pure functions of what the
//! job already stores, so that nothing new is kept and a restart names the same spans:
//! the trace id is the job's `trace_id` when it is one (32 lowercase hex digits, not all
//! zero) and otherwise derived from the job id; the span of attempt n is derived from the
//! job id and n, and the `enqueue` span from the job id.

use semantica_core::{Job, JobId};
use sha2::{Digest, Sha256};

/// `traceparent` split into its trace id and parent span id, if it is well formed:
/// version `00` (or a later one, whose first four fields are read the same way), 32 and
/// 16 lowercase hex digits, neither all zero, two hex digits of flags.
pub fn parse_traceparent(traceparent: &str) -> Option<(&str, &str)> {
    let mut parts = traceparent.split('-');
    let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let version_ok = hex(version, 2) && version != "ff" && (version != "00" || parts.next().is_none());
    let nonzero = |text: &str| text.bytes().any(|b| b != b'0');
    (version_ok && hex(trace_id, 32) && nonzero(trace_id) && hex(span_id, 16) && nonzero(span_id) && hex(flags, 2))
        .then_some((trace_id, span_id))
}

/// The job's trace id: 32 lowercase hex digits.
pub fn trace_id(job: &Job) -> String {
    let given = job.trace_id.as_str();
    let is_trace_id = given.len() == 32
        && given.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && given.bytes().any(|b| b != b'0');
    if is_trace_id {
        return given.to_owned();
    }
    hex(&derived(job.id, "trace", 0)[..16])
}

/// The span of the job's `enqueue <queue>` span: 16 lowercase hex digits.
pub fn enqueue_span_id(id: JobId) -> String {
    hex(&derived(id, "enqueue", 0)[..8])
}

/// The span of attempt `attempt` of the job (`run <job_type>`): 16 lowercase hex digits.
pub fn run_span_id(id: JobId, attempt: u32) -> String {
    hex(&derived(id, "run", attempt)[..8])
}

/// `TRACEPARENT` for the job's current attempt (sampled).
pub fn traceparent(job: &Job) -> String {
    format!("00-{}-{}-01", trace_id(job), run_span_id(job.id, job.attempts))
}

fn derived(id: JobId, what: &str, attempt: u32) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(what.as_bytes());
    hash.update(id.to_string().as_bytes());
    hash.update(attempt.to_be_bytes());
    let mut bytes: [u8; 32] = hash.finalize().into();
    // An all-zero id is invalid in W3C Trace Context; a hash makes one with odds 2⁻⁶⁴.
    bytes[0] |= u8::from(bytes[..8].iter().all(|b| *b == 0));
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_only_when_well_formed() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(parse_traceparent(good), Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn span_ids_differ_per_attempt_and_stay_the_same_for_one() {
        let id = JobId::from_u128(7);
        assert_eq!(run_span_id(id, 1), run_span_id(id, 1));
        assert_ne!(run_span_id(id, 1), run_span_id(id, 2));
        assert_ne!(run_span_id(id, 1), enqueue_span_id(id));
        assert_eq!(run_span_id(id, 1).len(), 16);
    }
}
