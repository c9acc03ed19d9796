//! The `duration` target: see `tessera_core::fuzzing::duration` for what it does.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_core::fuzzing::duration(data));
