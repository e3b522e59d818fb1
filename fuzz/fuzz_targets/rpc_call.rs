//! Every JSON-RPC method with arbitrary params, through the daemon's real method table
//! on a real service. See `semantica_fuzz::rpc_call`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    semantica_fuzz::rpc_call(data);
});
