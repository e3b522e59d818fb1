//! Arbitrary bytes as `dev.enqueue.v1` params: JSON, then the daemon's wire decoding, then
//! core's validation and the engine. Nothing may panic. See `semantica_fuzz::wire_enqueue`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    semantica_fuzz::wire_enqueue(data);
});
