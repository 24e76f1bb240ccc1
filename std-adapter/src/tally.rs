//! What the lock-free paths count (successes that change nothing, open
//! rejections), kept per thread so that counting writes no memory another
//! thread writes.
//!
//! Each live thread that counts holds a small process-wide index, the
//! lowest free one, until it exits. Each breaker has a cache-line-sized
//! slot per index (up to a limit): a thread is the only writer of its slot
//! in every breaker, so counting is a plain load and store, no
//! read-modify-write and no cache line bouncing between cores. Readers sum
//! the slots. When a thread exits, its index, and the counts in its slots,
//! pass to the next thread that needs one. Threads with no index, or one
//! past a breaker's slots, fall back to a shared counter and an atomic add.

use crate::sync::{AtomicU64, Ordering};

/// Successes and rejections counted outside the lock, since the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tallied {
    pub successes: u64,
    pub rejected: u64,
}

/// One thread's counters, alone on their cache line(s).
#[derive(Default)]
#[repr(align(128))]
struct Slot {
    successes: AtomicU64,
    rejected: AtomicU64,
}

impl Slot {
    fn read(&self) -> Tallied {
        Tallied {
            successes: self.successes.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// A breaker's lock-free counts.
pub(crate) struct Tally {
    /// One per thread index below its length.
    slots: Box<[Slot]>,
    /// For threads without a slot.
    overflow: Slot,
    /// The sums at the last reset (written and read under the breaker's lock).
    baseline: [AtomicU64; 2],
}

/// Which counter of a slot.
#[derive(Clone, Copy)]
pub(crate) enum Count {
    Success,
    Rejection,
}

impl Count {
    fn of(self, slot: &Slot) -> &AtomicU64 {
        match self {
            Count::Success => &slot.successes,
            Count::Rejection => &slot.rejected,
        }
    }
}

impl Tally {
    pub(crate) fn new() -> Self {
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        // Pools often run more threads than cores; beyond this they share
        // the overflow counter, correctly, at the price of an atomic add.
        let slots = if cfg!(loom) {
            0
        } else {
            (parallelism * 4).clamp(8, index::INDICES)
        };
        Tally {
            slots: (0..slots).map(|_| Slot::default()).collect(),
            overflow: Slot::default(),
            baseline: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Counts one, on this thread's slot.
    #[inline]
    pub(crate) fn add(&self, count: Count) {
        match self.slots.get(index::current()) {
            Some(slot) => {
                // This thread is the slot's only writer: no read-modify-write.
                // Wrapping: one increment per call cannot reach 2^64 (585
                // years at a call a nanosecond); saturating would lengthen
                // the chain through this counter with a conditional move.
                let counter = count.of(slot);
                let n = counter.load(Ordering::Relaxed).wrapping_add(1);
                counter.store(n, Ordering::Relaxed);
            }
            None => self.add_cold(count),
        }
    }

    #[cold]
    fn add_cold(&self, count: Count) {
        if index::claim() {
            return self.add(count);
        }
        count.of(&self.overflow).fetch_add(1, Ordering::Relaxed);
    }

    /// Everything counted since the last reset.
    pub(crate) fn read(&self) -> Tallied {
        let mut sum = self.overflow.read();
        for slot in self.slots.iter() {
            let s = slot.read();
            sum.successes = sum.successes.saturating_add(s.successes);
            sum.rejected = sum.rejected.saturating_add(s.rejected);
        }
        let [successes, rejected] = self.baseline.each_ref().map(|b| b.load(Ordering::Relaxed));
        Tallied {
            successes: sum.successes.saturating_sub(successes),
            rejected: sum.rejected.saturating_sub(rejected),
        }
    }

    /// Starts counting from zero. The counters themselves only grow (other
    /// threads may be adding to their slots right now), so this moves the
    /// baseline instead. Called with the breaker's lock held, as `read` is.
    pub(crate) fn reset(&self) {
        let now = self.read();
        let [successes, rejected] = &self.baseline;
        successes.store(
            successes
                .load(Ordering::Relaxed)
                .saturating_add(now.successes),
            Ordering::Relaxed,
        );
        rejected.store(
            rejected
                .load(Ordering::Relaxed)
                .saturating_add(now.rejected),
            Ordering::Relaxed,
        );
    }
}

/// The process-wide thread indices.
#[cfg(not(loom))]
mod index {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// How many threads can hold an index at once (one bit each in `FREE`).
    pub(super) const INDICES: usize = 64;

    /// Bit `i` set: index `i` is free.
    static FREE: AtomicU64 = AtomicU64::new(u64::MAX);

    /// Past every breaker's slots: no index.
    const NONE: usize = usize::MAX;

    thread_local! {
        // No destructor, so it is readable even while the thread exits.
        static CURRENT: Cell<usize> = const { Cell::new(NONE) };
        // Gives the index back when the thread exits.
        static HELD: Held = const { Held(Cell::new(None)) };
    }

    struct Held(Cell<Option<u32>>);

    impl Drop for Held {
        fn drop(&mut self) {
            if let Some(i) = self.0.take() {
                // Later destructors of this thread count on the overflow.
                let _ = CURRENT.try_with(|c| c.set(NONE));
                // Release: the next holder sees every count made under it.
                FREE.fetch_or(1 << i, Ordering::Release);
            }
        }
    }

    /// This thread's index, or a number past every breaker's slots.
    #[inline]
    pub(super) fn current() -> usize {
        CURRENT.with(Cell::get)
    }

    /// Takes the lowest free index for this thread; `false` if it has one
    /// already, none is free, or the thread is exiting.
    pub(super) fn claim() -> bool {
        if current() != NONE {
            return false;
        }
        let mut free = FREE.load(Ordering::Relaxed);
        let i = loop {
            if free == 0 {
                return false;
            }
            let i = free.trailing_zeros();
            // Acquire: see every count the index's last holder made.
            match FREE.compare_exchange_weak(
                free,
                free & !(1 << i),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break i,
                Err(now) => free = now,
            }
        };
        if HELD.try_with(|held| held.0.set(Some(i))).is_err() {
            FREE.fetch_or(1 << i, Ordering::Release);
            return false;
        }
        CURRENT.with(|c| c.set(i as usize));
        true
    }
}

/// Under loom, no thread has an index: every count goes to the overflow
/// counter. The index protocol is plain std code, checked by the
/// multi-threaded tests and Miri.
#[cfg(loom)]
mod index {
    pub(super) const INDICES: usize = 0;

    pub(super) fn current() -> usize {
        usize::MAX
    }

    pub(super) fn claim() -> bool {
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::{Arc, Barrier, Mutex, MutexGuard};

    use super::*;

    const CALLS: u64 = if cfg!(miri) { 200 } else { 10_000 };

    /// Thread indices are process-wide: one test at a time holds them.
    fn alone() -> MutexGuard<'static, ()> {
        static ALONE: Mutex<()> = Mutex::new(());
        ALONE.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[test]
    fn each_thread_counts_on_its_own_slot_and_nothing_is_lost() {
        let _alone = alone();
        let tally = Tally::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..CALLS {
                        tally.add(Count::Success);
                    }
                    tally.add(Count::Rejection);
                });
            }
        });
        let expected = Tallied {
            successes: 4 * CALLS,
            rejected: 4,
        };
        assert_eq!(tally.read(), expected);
        assert_eq!(tally.overflow.read(), Tallied::default(), "each had a slot");
    }

    #[test]
    fn indices_pass_from_exited_threads_to_new_ones_and_extra_threads_overflow() {
        let _alone = alone();
        let tally = Arc::new(Tally::new());
        let slots = tally.slots.len();
        // Three times as many short-lived threads as slots, one after
        // another: each takes over the index, and the counts, one left.
        for _ in 0..slots * 3 {
            let t = tally.clone();
            std::thread::spawn(move || t.add(Count::Success))
                .join()
                .unwrap();
        }
        assert_eq!(tally.read().successes, slots as u64 * 3);
        assert_eq!(tally.overflow.read().successes, 0, "no thread overflowed");
        // More live threads than slots: the extra ones overflow, nothing is lost.
        let barrier = Barrier::new(slots + 4);
        std::thread::scope(|s| {
            for _ in 0..slots + 4 {
                s.spawn(|| {
                    tally.add(Count::Success);
                    barrier.wait();
                    tally.add(Count::Success);
                });
            }
        });
        assert_eq!(
            tally.read().successes,
            slots as u64 * 3 + 2 * (slots as u64 + 4)
        );
        assert!(tally.overflow.read().successes >= 2 * 4);
    }

    #[test]
    fn one_thread_counts_on_many_breakers() {
        let _alone = alone();
        let tallies: Vec<Tally> = (0..40).map(|_| Tally::new()).collect();
        for round in 1..=3 {
            for t in &tallies {
                t.add(Count::Success);
            }
            for t in &tallies {
                assert_eq!(t.read().successes, round);
            }
        }
    }

    #[test]
    fn reset_starts_from_zero_while_the_slots_keep_growing() {
        let _alone = alone();
        let tally = Tally::new();
        tally.add(Count::Success);
        tally.add(Count::Rejection);
        tally.reset();
        assert_eq!(tally.read(), Tallied::default());
        tally.add(Count::Success);
        assert_eq!(
            tally.read(),
            Tallied {
                successes: 1,
                rejected: 0
            }
        );
    }
}
