//! Arbitrary enqueue requests through validation and into the engine: validation must
//! never panic, and whatever it accepts the engine must enqueue without breaking a rule.
//! The body is `semantica_fuzz::core_targets::enqueue_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    semantica_fuzz::core_targets::enqueue_request(data);
});
