//! Every synchronisation primitive of the shared breaker, in one place, so
//! that `--cfg loom` can swap in loom's model-checked versions.

// portable-atomic's types are core's where the target has the operation;
// where it lacks compare-and-swap the user picks its fallback.
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(not(loom))]
pub(crate) use portable_atomic::{fence, AtomicU32, Ordering};

// The snapshot's sequence number: 64 bits where the target has 64-bit
// atomics (it never wraps, so "unchanged" is one load), 32 elsewhere.
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64 as AtomicSeq;
#[cfg(all(not(loom), target_has_atomic = "64"))]
pub(crate) use portable_atomic::AtomicU64 as AtomicSeq;
#[cfg(not(any(loom, target_has_atomic = "64")))]
pub(crate) use AtomicU32 as AtomicSeq;

/// A value of [`AtomicSeq`].
#[cfg(any(loom, target_has_atomic = "64"))]
pub(crate) type Seq = u64;
/// A value of [`AtomicSeq`].
#[cfg(not(any(loom, target_has_atomic = "64")))]
pub(crate) type Seq = u32;

/// Waits a moment in a retry loop (under loom: lets another thread run,
/// which loom needs to see progress).
pub(crate) fn spin() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Replaces `counter`'s value with `f(value)` unless `f` says `None`, and
/// returns what it saw: a compare-and-swap loop (on targets without one,
/// portable-atomic's fallback, which the user chose).
pub(crate) fn update(counter: &AtomicU32, mut f: impl FnMut(u32) -> Option<u32>) -> u32 {
    match counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, &mut f) {
        Ok(seen) | Err(seen) => seen,
    }
}

/// A 64-bit value the shared breaker's snapshot publishes: one atomic word
/// where the target has 64-bit atomics, two 32-bit halves elsewhere (and
/// under loom, which then checks the harder case). Written and read only
/// inside the snapshot's sequence lock, so the halves need no atomicity
/// together.
pub(crate) struct Word64 {
    #[cfg(all(not(loom), target_has_atomic = "64"))]
    word: portable_atomic::AtomicU64,
    #[cfg(not(all(not(loom), target_has_atomic = "64")))]
    halves: [AtomicU32; 2],
}

impl Word64 {
    #[cfg(all(not(loom), target_has_atomic = "64"))]
    pub(crate) const fn new() -> Self {
        Self::holding(0)
    }

    #[cfg(not(any(loom, target_has_atomic = "64")))]
    pub(crate) const fn new() -> Self {
        Self::holding(0)
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self::holding(0)
    }

    /// A word holding `value`.
    #[cfg(all(not(loom), target_has_atomic = "64"))]
    pub(crate) const fn holding(value: u64) -> Self {
        Word64 {
            word: portable_atomic::AtomicU64::new(value),
        }
    }

    /// A word holding `value`.
    #[cfg(not(any(loom, target_has_atomic = "64")))]
    pub(crate) const fn holding(value: u64) -> Self {
        Word64 {
            halves: [
                AtomicU32::new(value as u32),
                AtomicU32::new((value >> 32) as u32),
            ],
        }
    }

    /// A word holding `value`.
    #[cfg(loom)]
    pub(crate) fn holding(value: u64) -> Self {
        Word64 {
            halves: [
                AtomicU32::new(value as u32),
                AtomicU32::new((value >> 32) as u32),
            ],
        }
    }

    #[inline(always)]
    pub(crate) fn load(&self) -> u64 {
        #[cfg(all(not(loom), target_has_atomic = "64"))]
        {
            self.word.load(Ordering::Relaxed)
        }
        #[cfg(not(all(not(loom), target_has_atomic = "64")))]
        {
            let [lo, hi] = &self.halves;
            lo.load(Ordering::Relaxed) as u64 | (hi.load(Ordering::Relaxed) as u64) << 32
        }
    }

    pub(crate) fn store(&self, value: u64) {
        #[cfg(all(not(loom), target_has_atomic = "64"))]
        self.word.store(value, Ordering::Relaxed);
        #[cfg(not(all(not(loom), target_has_atomic = "64")))]
        {
            self.halves[0].store(value as u32, Ordering::Relaxed);
            self.halves[1].store((value >> 32) as u32, Ordering::Relaxed);
        }
    }
}
