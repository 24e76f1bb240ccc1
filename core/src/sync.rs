//! Every synchronisation primitive of the shared breaker, in one place, so
//! that `--cfg loom` can swap in loom's model-checked versions.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};

/// Waits a moment in a retry loop (under loom: lets another thread run,
/// which loom needs to see progress).
pub(crate) fn spin() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Replaces `counter`'s value with `f(value)` unless `f` says `None`, and
/// returns what it saw: a compare-and-swap loop where the target has one, a
/// critical section around a load and a store where it has not
/// (`thumbv6m`, `riscv32imc`). Nothing for the user to enable.
pub(crate) fn update(counter: &AtomicU32, mut f: impl FnMut(u32) -> Option<u32>) -> u32 {
    #[cfg(any(loom, target_has_atomic = "32"))]
    {
        match counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, &mut f) {
            Ok(seen) | Err(seen) => seen,
        }
    }
    #[cfg(not(any(loom, target_has_atomic = "32")))]
    {
        critical_section::with(|_| {
            let value = counter.load(Ordering::Relaxed);
            if let Some(new) = f(value) {
                counter.store(new, Ordering::Relaxed);
            }
            value
        })
    }
}
