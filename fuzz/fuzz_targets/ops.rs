//! `cargo +nightly fuzz run ops`: see `src/lib.rs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| breakerbox_fuzz::ops(data));
