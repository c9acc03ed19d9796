//! The `jose` target: see `tessera_core::fuzzing::jose` for what it does.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_core::fuzzing::jose(data));
