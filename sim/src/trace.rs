//! The run's trace: a stable hash over every input, reply and action, and the last few
//! operations in readable form for a failure report.
//!
//! The hash is FNV-1a over the textual trace, written here so that its output is fixed by
//! this code forever (std's `DefaultHasher` promises no such thing).

use std::collections::VecDeque;

/// 64-bit FNV-1a.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a {
    state: u64,
}

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn new() -> Fnv1a {
        Fnv1a { state: Fnv1a::OFFSET_BASIS }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.state ^= u64::from(*byte);
            self.state = self.state.wrapping_mul(Fnv1a::PRIME);
        }
    }

    pub fn finish(&self) -> u64 {
        self.state
    }
}

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a::new()
    }
}

/// How many recent operations a failure report shows.
pub const RECENT_OPS_MAX: usize = 30;
/// A recent operation is cut to this many characters for display (the hash sees it whole).
pub const RECENT_OP_CHARS_MAX: usize = 600;

#[derive(Clone, Debug, Default)]
pub struct Trace {
    hash: Fnv1a,
    recent: VecDeque<String>,
    records: u64,
    /// Every shown line, when asked for (`--trace`): replays only, it grows without bound.
    all: Option<Vec<String>>,
}

impl Trace {
    pub fn new() -> Trace {
        Trace::default()
    }

    /// A trace that also keeps every line, for `--trace`.
    pub fn keeping_all() -> Trace {
        Trace { all: Some(Vec::new()), ..Trace::default() }
    }

    /// Every shown line, if the trace keeps them.
    pub fn all(&self) -> Option<&[String]> {
        self.all.as_deref()
    }

    /// Adds one line to the hash and to the recent operations.
    pub fn record(&mut self, line: &str) {
        self.record_as(line, line);
    }

    /// Hashes `full` and shows `shown` among the recent operations.
    pub fn record_as(&mut self, full: &str, shown: &str) {
        self.hash.write(full.as_bytes());
        self.hash.write(b"\n");
        self.records += 1;
        if self.recent.len() == RECENT_OPS_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(shorten(shown, RECENT_OP_CHARS_MAX));
        if let Some(all) = &mut self.all {
            all.push(format!("#{} {shown}", self.records - 1));
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// The last operations, oldest first, each prefixed by its number in the run.
    pub fn recent(&self) -> Vec<String> {
        let first = self.records - self.recent.len() as u64;
        self.recent.iter().enumerate().map(|(i, line)| format!("#{} {}", first + i as u64, line)).collect()
    }
}

pub fn shorten(line: &str, chars_max: usize) -> String {
    if line.chars().count() <= chars_max {
        return line.to_owned();
    }
    let mut short: String = line.chars().take(chars_max).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        let hash = |text: &str| {
            let mut h = Fnv1a::new();
            h.write(text.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn trace_keeps_only_the_last_operations() {
        let mut trace = Trace::new();
        for i in 0..100 {
            trace.record(&format!("op {i}"));
        }
        let recent = trace.recent();
        assert_eq!(recent.len(), RECENT_OPS_MAX);
        assert_eq!(recent[0], "#70 op 70");
        assert_eq!(recent[RECENT_OPS_MAX - 1], "#99 op 99");
    }
}
