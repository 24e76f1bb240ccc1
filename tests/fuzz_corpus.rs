//! Replays the fuzz targets' committed seed corpus (`fuzz/corpus/<target>/`)
//! through the same logic the fuzzers run, so every `cargo test` on stable
//! exercises it.

#[path = "../fuzz/src/lib.rs"]
mod fuzz_logic;

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        run(&fs::read(&path).expect("a readable input"));
        inputs += 1;
    }
    assert!(
        inputs >= 8,
        "{target}: only {inputs} seed inputs in {}",
        dir.display()
    );
}

#[test]
fn ops_corpus() {
    replay("ops", fuzz_logic::ops);
}

#[test]
fn config_corpus() {
    replay("config", fuzz_logic::config);
}

#[test]
fn clock_corpus() {
    replay("clock", fuzz_logic::clock);
}
