//! What both crates' loom tests use: racing threads that loom explores in
//! every order, and a check that it did. (Also compiled into the std
//! adapter's loom tests.)

use std::sync::atomic::{AtomicUsize, Ordering};

loom::lazy_static! {
    static ref GATE: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
}

/// The first step of each racing thread: a write both make, so that loom
/// tries their steps in every order (a thread whose first steps are loads
/// can leave loom exploring one interleaving, tokio-rs/loom#392).
pub fn go() {
    GATE.fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
}

/// Runs `f` under loom and checks that more than one interleaving was
/// explored.
pub fn explore(f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    loom::model(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        f();
    });
    let runs = runs.load(Ordering::SeqCst);
    assert!(runs > 1, "loom explored {runs} interleaving");
}
