//! Arbitrary log contents read in chunks at arbitrary offsets and limits: a chunk never
//! splits a character and the chunks concatenate to the lossy decoding of the whole file.
//! See `semantica_fuzz::log_chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    semantica_fuzz::log_chunk(data);
});
