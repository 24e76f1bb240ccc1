//! Puts the target board's memory map on the linker path and links with
//! cortex-m-rt's `link.x` (from here, not from `.cargo/config.toml`, so an
//! exported `RUSTFLAGS` cannot silently drop it).

use std::{env, fs, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let memory = if target.starts_with("thumbv6m") {
        // micro:bit v1, nRF51822: 256 KiB flash, 16 KiB RAM.
        "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n  RAM : ORIGIN = 0x20000000, LENGTH = 16K\n}\n"
    } else {
        // MPS2 AN386 (Cortex-M4): code in SSRAM1, data in SSRAM2.
        "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 4M\n  RAM : ORIGIN = 0x20000000, LENGTH = 4M\n}\n"
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), memory).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    println!("cargo:rustc-check-cfg=cfg(armv7em)");
    println!("cargo:rustc-check-cfg=cfg(portable_atomic_unsafe_assume_single_core)");
    if target.starts_with("thumbv7em") {
        println!("cargo:rustc-cfg=armv7em");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
