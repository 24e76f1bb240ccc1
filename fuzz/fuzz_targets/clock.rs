//! `cargo +nightly fuzz run clock`: see `src/lib.rs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| breakerbox_fuzz::clock(data));
