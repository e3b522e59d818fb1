//! The fuzz targets that need the daemon's wire code and the adapters' log reader. This
//! file is compiled twice: into `semantica-fuzz` (libFuzzer) and, by `#[path]`, into
//! `daemon/tests/fuzz_harness.rs` (proptest on stable, in CI). Both declare the core
//! targets as `crate::core_targets`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use semantica_adapters::logs::{read_chunk, CHUNK_BYTES_MAX};
use semantica_daemon::wire::{self, WireError};

/// The job types the daemon registers (`Handlers::builtin`).
const BUILTIN_JOB_TYPES: [&str; 5] = ["noop", "sleep", "echo", "fail", "index_file"];

/// `dev.enqueue.v1` params from arbitrary bytes: JSON decoding, the wire's conversion,
/// core's validation, the engine, and the job view back out.
pub fn wire_enqueue(data: &[u8]) {
    let Ok(params) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let request = match wire::enqueue_request(&params) {
        Ok(request) => request,
        Err(error) => {
            let answer = WireError::validation(&error);
            assert_eq!(answer.code, wire::VALIDATION_ERROR);
            return;
        }
    };
    let job_types: BTreeSet<String> = BUILTIN_JOB_TYPES.iter().map(|name| name.to_string()).collect();
    if let Err(error) = request.validate(&job_types) {
        let answer = WireError::validation(&error);
        assert_eq!(answer.data["field"], serde_json::json!(error.field), "the refusal names its field");
        return;
    }
    let (store, _) = crate::core_targets::enqueue_into_engine(request, &BUILTIN_JOB_TYPES);
    for job in store.jobs() {
        let view = wire::to_json(&wire::job_view(job, 0));
        assert_eq!(view["id"], serde_json::json!(job.id.to_string()));
    }
}

/// A file of the thread's own, rewritten by every run (libFuzzer runs one input at a time
/// per process; a test harness may run several threads).
fn scratch_file() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    std::env::temp_dir().join(format!("semantica-fuzz-log-chunk-{}-{thread}", std::process::id()))
}

/// The first four bytes choose the chunk limit and a starting offset; the rest is the log.
pub fn log_chunk(data: &[u8]) {
    let (head, content) = data.split_at(data.len().min(4));
    let mut raw = [0u8; 4];
    raw[..head.len()].copy_from_slice(head);
    let limit = u64::from(u16::from_le_bytes([raw[0], raw[1]])) % 64 + 1;
    let start = u64::from(u16::from_le_bytes([raw[2], raw[3]]));
    let path = scratch_file();
    std::fs::write(&path, content).expect("write the scratch log");
    let size = content.len() as u64;

    // Read from 0 to the end: never stuck, never past the end, and the same text as one
    // lossy decoding of the whole file.
    let (mut offset, mut text) = (0u64, String::new());
    for _ in 0..=content.len() + 1 {
        let chunk = read_chunk(&path, offset, limit).expect("read the scratch log");
        assert!(chunk.next_offset > offset || chunk.at_end, "no progress at {offset}");
        assert!(chunk.next_offset <= size.max(offset), "read past the end");
        if let Ok(valid) = std::str::from_utf8(content) {
            assert!(valid.is_char_boundary(chunk.next_offset as usize), "split a character at {}", chunk.next_offset);
        }
        text.push_str(&chunk.text);
        offset = chunk.next_offset;
        if chunk.at_end {
            break;
        }
    }
    assert_eq!(offset, size, "stopped before the end");
    assert_eq!(text, String::from_utf8_lossy(content), "chunks differ from the whole");

    // Any offset, even inside a character or past the end, and the largest limit.
    for limit in [limit, CHUNK_BYTES_MAX, u64::MAX] {
        let chunk = read_chunk(&path, start, limit).expect("read the scratch log");
        assert!(chunk.next_offset >= start);
        if start >= size {
            assert!(chunk.text.is_empty() && chunk.at_end && chunk.next_offset == start);
        } else {
            assert!(chunk.next_offset > start, "no progress at {start}");
        }
    }
    let _ = std::fs::remove_file(&path);
}
