//! The policy loader on arbitrary bytes: `lifeboat::fuzzing::policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lifeboat::fuzzing::policy(data));
