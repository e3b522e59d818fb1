//! Arbitrary bytes as a damaged or malicious database file (raw, byte-patched, or edited
//! through SQL): opening it, every read of the store and the next commits answer with an
//! error, never a panic. See `semantica_fuzz::hostile_database`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    semantica_fuzz::hostile_database(data);
});
