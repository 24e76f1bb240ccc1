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

/// Adds one, returning the previous value: an atomic add where the target
/// has compare-and-swap, a critical section around a load and a store where
/// it has not (`thumbv6m`, `riscv32imc`). Nothing for the user to enable.
pub(crate) fn increment(counter: &AtomicU32) -> u32 {
    #[cfg(any(loom, target_has_atomic = "32"))]
    {
        counter.fetch_add(1, Ordering::Relaxed)
    }
    #[cfg(not(any(loom, target_has_atomic = "32")))]
    {
        critical_section::with(|_| {
            let value = counter.load(Ordering::Relaxed);
            counter.store(value.wrapping_add(1), Ordering::Relaxed);
            value
        })
    }
}

/// Takes the value out, leaving zero; like [`increment`], atomic or in a
/// critical section.
pub(crate) fn take(counter: &AtomicU32) -> u32 {
    #[cfg(any(loom, target_has_atomic = "32"))]
    {
        counter.swap(0, Ordering::Relaxed)
    }
    #[cfg(not(any(loom, target_has_atomic = "32")))]
    {
        critical_section::with(|_| {
            let value = counter.load(Ordering::Relaxed);
            counter.store(0, Ordering::Relaxed);
            value
        })
    }
}

/// The lock around the state machine: a critical section (on a single core,
/// interrupts masked for a few hundred cycles), or loom's mutex under loom.
pub(crate) struct Lock<T> {
    #[cfg(not(loom))]
    inner: critical_section::Mutex<core::cell::RefCell<T>>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

impl<T> Lock<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        Lock {
            inner: critical_section::Mutex::new(core::cell::RefCell::new(value)),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Lock {
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Runs `f` on the locked value; `None` if the value is already borrowed
    /// by this same context (`f` re-entered the lock), instead of a panic.
    #[cfg(not(loom))]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        critical_section::with(|cs| {
            let mut value = self.inner.borrow(cs).try_borrow_mut().ok()?;
            Some(f(&mut value))
        })
    }

    #[cfg(loom)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut value = self.inner.lock().ok()?;
        Some(f(&mut value))
    }
}
