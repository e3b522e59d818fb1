//! Arbitrary bytes as a sequence of engine inputs on the reference store, each step judged
//! by the rule checker of `core/tests/harness`. See `semantica_fuzz::core_targets::engine_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    semantica_fuzz::core_targets::engine_ops(data);
});
