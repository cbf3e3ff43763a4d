//! The HTTP API on arbitrary requests: `lifeboat::fuzzing::api_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lifeboat::fuzzing::api_request(data));
