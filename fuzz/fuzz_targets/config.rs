//! `cargo +nightly fuzz run config`: see `src/lib.rs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| breakerbox_fuzz::config(data));
