//! The `token` target: see `tessera_core::fuzzing::token` for what it does.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_core::fuzzing::token(data));
