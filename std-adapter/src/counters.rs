//! What the lock-free paths count (successes that change nothing, open
//! rejections), kept per thread so that counting writes no memory another
//! thread writes.
//!
//! Each live thread that counts holds a small process-wide index, the
//! lowest free one, until it exits. A breaker has a slot per index, made
//! the first time a thread with that index counts on it, in buckets of
//! 1, 2, 4, … 32 slots: a breaker no thread counted on holds no slot at
//! all. A thread is the only writer of its slot in every breaker, so
//! counting is a plain load and store, no read-modify-write and no cache
//! line bouncing between cores. When a thread exits, its index, and the
//! counts in its slots, pass to the next thread that needs one. Threads
//! past the last index count under a mutex.
//!
//! Each slot carries the epoch its counts belong to (see
//! [`LockFreeCounters`]): readers skip a slot of another epoch, so a count
//! that raced a reset is zeroed with the rest.

use breakerbox_core::{LockFreeCounters, LockFreeCounts, LockFreeEvent};

use crate::sync::{lock, AtomicU32, AtomicU64, Mutex, OnceLock, Ordering};

/// One thread's counters, alone on their cache line(s).
#[derive(Default)]
#[repr(align(128))]
struct Slot {
    epoch: AtomicU32,
    successes: AtomicU64,
    rejected: AtomicU64,
}

/// Whether epoch `a` comes after `b` (24-bit epochs, compared as a
/// wrapping sequence).
fn is_after(a: u32, b: u32) -> bool {
    let ahead = a.wrapping_sub(b) & 0x00ff_ffff;
    ahead != 0 && ahead < 0x0080_0000
}

impl Slot {
    /// Counts `event` under `epoch`. Called only by the slot's owner.
    #[inline(always)]
    fn add(&self, event: LockFreeEvent, epoch: u32) -> bool {
        let counter = match event {
            LockFreeEvent::Success => &self.successes,
            LockFreeEvent::Rejection => &self.rejected,
        };
        let seen = self.epoch.load(Ordering::Relaxed);
        if seen == epoch {
            // This thread is the slot's only writer: no read-modify-write.
            // Wrapping: one increment per call cannot reach 2^64 (585
            // years at a call a nanosecond).
            let n = counter.load(Ordering::Relaxed).wrapping_add(1);
            counter.store(n, Ordering::Relaxed);
            return true;
        }
        self.restart(counter, epoch, seen)
    }

    /// The first count of a newer epoch: the old counts were zeroed by a
    /// reset. The counts are written before the epoch (release), so a
    /// reader that sees the epoch sees them.
    #[cold]
    fn restart(&self, counter: &AtomicU64, epoch: u32, seen: u32) -> bool {
        if !is_after(epoch, seen) {
            // The slot already counts a newer epoch (it passed from an
            // exited thread): this count raced a reset and was zeroed.
            return false;
        }
        self.successes.store(0, Ordering::Relaxed);
        self.rejected.store(0, Ordering::Relaxed);
        counter.store(1, Ordering::Relaxed);
        self.epoch.store(epoch, Ordering::Release);
        true
    }

    fn read(&self, epoch: u32) -> LockFreeCounts {
        if self.epoch.load(Ordering::Acquire) != epoch {
            return LockFreeCounts::default();
        }
        LockFreeCounts {
            successes: self.successes.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Counts of the threads past the last index, under a mutex.
#[derive(Default)]
struct Overflow {
    epoch: u32,
    counts: LockFreeCounts,
}

/// The slots, made at the first lock-free count.
#[derive(Default)]
struct Table {
    /// Bucket `b` holds the slots of indices `2^b - 1 .. 2^(b+1) - 1`.
    buckets: [OnceLock<Box<[Slot]>>; index::BUCKETS],
    overflow: Mutex<Overflow>,
}

impl Table {
    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.buckets
            .iter()
            .filter_map(OnceLock::get)
            .flat_map(|b| b.iter())
    }
}

/// A breaker's lock-free counts, per thread: two pointers until a thread
/// counts. The first thread to count makes the slots of every index up to
/// its own (rounded up to a power of two, at least four) in one run,
/// reached in one step; the slots of higher indices come in buckets, a
/// step further.
#[derive(Default)]
pub(crate) struct ThreadCounters {
    first: OnceLock<Box<[Slot]>>,
    table: OnceLock<Box<Table>>,
}

impl ThreadCounters {
    #[inline(always)]
    fn table(&self) -> &Table {
        match self.table.get() {
            Some(table) => table,
            None => self.make_table(),
        }
    }

    #[cold]
    fn make_table(&self) -> &Table {
        self.table.get_or_init(Box::default)
    }

    /// This thread's slot, made now if this is its first count here.
    #[inline(always)]
    fn slot(&self) -> Option<&Slot> {
        // A thread without an index reads one past every run: no test for
        // it on the hot path.
        let i = index::current_or_past_end();
        match self.first.get().and_then(|first| first.get(i)) {
            Some(slot) => Some(slot),
            None => self.slot_past_first(),
        }
    }

    /// This thread's slot when it is not in the first run (or the run is
    /// not made yet): out of line, but not cold (a pool of more than four
    /// threads counts here on every call).
    #[inline(never)]
    fn slot_past_first(&self) -> Option<&Slot> {
        let i = index::current()?;
        match self.first.get() {
            Some(_) => self.bucket_slot(i),
            None => self.make_first(i).get(i),
        }
    }

    #[cold]
    fn make_first(&self, i: usize) -> &[Slot] {
        // At least the four lowest indices: the threads of a small pool.
        let len = (i + 1).next_power_of_two().max(4);
        self.first
            .get_or_init(|| (0..len).map(|_| Slot::default()).collect())
    }

    /// The slot of an index past the first run, in its bucket.
    #[inline]
    fn bucket_slot(&self, i: usize) -> Option<&Slot> {
        let (bucket, offset) = index::bucket_of(i);
        let slots = match self.table().buckets[bucket].get() {
            Some(slots) => slots,
            None => self.make_bucket(bucket),
        };
        slots.get(offset)
    }

    #[cold]
    fn make_bucket(&self, bucket: usize) -> &[Slot] {
        self.table().buckets[bucket]
            .get_or_init(|| (0..1 << bucket).map(|_| Slot::default()).collect())
    }

    #[cold]
    fn add_without_slot(&self, event: LockFreeEvent, epoch: u32) -> bool {
        if index::claim() {
            return self.add(event, epoch);
        }
        let mut overflow = lock(&self.table().overflow);
        if overflow.epoch != epoch {
            if !is_after(epoch, overflow.epoch) {
                return false;
            }
            *overflow = Overflow {
                epoch,
                counts: LockFreeCounts::default(),
            };
        }
        let c = &mut overflow.counts;
        match event {
            LockFreeEvent::Success => c.successes = c.successes.saturating_add(1),
            LockFreeEvent::Rejection => c.rejected = c.rejected.saturating_add(1),
        }
        true
    }

    /// Bytes of slots made so far.
    #[cfg(all(test, not(loom)))]
    fn slot_bytes(&self) -> usize {
        let first = self.first.get().map_or(0, |f| f.len());
        let rest = self.table.get().map_or(0, |t| t.slots().count());
        (first + rest) * std::mem::size_of::<Slot>()
    }
}

impl LockFreeCounters for ThreadCounters {
    fn new() -> Self {
        ThreadCounters::default()
    }

    #[inline(always)]
    fn add(&self, event: LockFreeEvent, epoch: u32) -> bool {
        match self.slot() {
            Some(slot) => slot.add(event, epoch),
            None => self.add_without_slot(event, epoch),
        }
    }

    fn read(&self, epoch: u32) -> LockFreeCounts {
        let mut sum = LockFreeCounts::default();
        if let Some(table) = self.table.get() {
            let overflow = lock(&table.overflow);
            if overflow.epoch == epoch {
                sum = overflow.counts;
            }
        }
        let first = self.first.get().map(|f| f.iter());
        let rest = self.table.get().map(|t| t.slots());
        for slot in first
            .into_iter()
            .flatten()
            .chain(rest.into_iter().flatten())
        {
            let s = slot.read(epoch);
            sum.successes = sum.successes.saturating_add(s.successes);
            sum.rejected = sum.rejected.saturating_add(s.rejected);
        }
        sum
    }

    /// Never needed: a slot's `u64`s cannot fill.
    fn take(&self, _epoch: u32) -> LockFreeCounts {
        LockFreeCounts::default()
    }
}

/// The process-wide thread indices.
mod index {
    use std::cell::Cell;

    use crate::sync::{AtomicU64, Ordering};

    /// Buckets of slots: 1 + 2 + … + 32 = 63 indices.
    pub(crate) const BUCKETS: usize = 6;
    const INDICES: u32 = (1 << BUCKETS) - 1;

    /// Past every index: none held.
    const NONE: u32 = u32::MAX;

    #[cfg(not(loom))]
    /// Bit `i` set: index `i` is free.
    static FREE: AtomicU64 = AtomicU64::new((1 << INDICES) - 1);

    #[cfg(loom)]
    loom::lazy_static! {
        static ref FREE: AtomicU64 = AtomicU64::new((1 << INDICES) - 1);
    }

    struct Held(Cell<Option<u32>>);

    impl Drop for Held {
        fn drop(&mut self) {
            // Under loom every execution starts with all indices free, and
            // its thread-locals are dropped after its atomics are gone: the
            // loom tests give indices back with `release` instead.
            #[cfg(not(loom))]
            give_back(self);
        }
    }

    /// Gives `held`'s index back: later counts of this thread (its later
    /// destructors) go to the overflow, and the next thread to claim the
    /// index counts on in the same slot.
    fn give_back(held: &Held) {
        if let Some(i) = held.0.take() {
            let _ = CURRENT.try_with(|c| c.set(NONE));
            // Release: the next holder sees every count made under it.
            FREE.fetch_or(1 << i, Ordering::Release);
        }
    }

    /// What a thread's exit does, for the loom tests (whose thread-locals
    /// are dropped outside the model).
    #[cfg(all(test, loom))]
    pub(crate) fn release() {
        HELD.with(give_back);
    }

    #[cfg(not(loom))]
    thread_local! {
        // No destructor, so it is readable even while the thread exits.
        static CURRENT: Cell<u32> = const { Cell::new(NONE) };
        // Gives the index back when the thread exits.
        static HELD: Held = const { Held(Cell::new(None)) };
    }

    #[cfg(loom)]
    loom::thread_local! {
        static CURRENT: Cell<u32> = Cell::new(NONE);
        static HELD: Held = Held(Cell::new(None));
    }

    /// This thread's index, if it holds one.
    #[inline(always)]
    pub(crate) fn current() -> Option<usize> {
        let i = CURRENT.with(Cell::get);
        (i != NONE).then_some(i as usize)
    }

    /// This thread's index, or one no slot run reaches if it holds none.
    #[inline(always)]
    pub(crate) fn current_or_past_end() -> usize {
        CURRENT.with(Cell::get) as usize
    }

    /// Index `i`'s bucket and its place in it.
    pub(crate) fn bucket_of(i: usize) -> (usize, usize) {
        let bucket = (usize::BITS - 1 - (i + 1).leading_zeros()) as usize;
        (bucket, i + 1 - (1 << bucket))
    }

    /// Takes the lowest free index for this thread; `false` if it has one
    /// already, none is free, or the thread is exiting.
    pub(crate) fn claim() -> bool {
        if CURRENT.with(Cell::get) != NONE {
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
        CURRENT.with(|c| c.set(i));
        true
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

    fn overflowed(c: &ThreadCounters) -> u64 {
        lock(&c.table().overflow).counts.successes
    }

    #[test]
    fn each_thread_counts_on_its_own_slot_and_nothing_is_lost() {
        let _alone = alone();
        let counters = ThreadCounters::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..CALLS {
                        assert!(counters.add(LockFreeEvent::Success, 0));
                    }
                    assert!(counters.add(LockFreeEvent::Rejection, 0));
                });
            }
        });
        let expected = LockFreeCounts {
            successes: 4 * CALLS,
            rejected: 4,
        };
        assert_eq!(counters.read(0), expected);
        assert_eq!(overflowed(&counters), 0, "each had a slot");
    }

    #[test]
    fn an_epoch_is_after_another_up_to_half_the_24_bit_range_ahead() {
        assert!(!is_after(5, 5), "an epoch is not after itself");
        assert!(is_after(6, 5));
        assert!(!is_after(5, 6));
        assert!(is_after(0x7f_ffff, 0), "just under half the range ahead");
        assert!(!is_after(0x80_0000, 0), "half the range ahead is behind");
        assert!(is_after(2, 0xff_fffe), "across the wrap");
        assert!(is_after(0x100_0005, 4), "bits above 24 are not compared");
    }

    #[test]
    fn the_first_run_holds_the_index_that_made_it_and_later_ones_get_bucket_slots() {
        for i in [0, 1, 3, 4, 5, 7, 8, 31, 32, 62] {
            let counters = ThreadCounters::new();
            let first = counters.make_first(i);
            assert!(first.len() > i, "index {i}: a first run of {}", first.len());
            assert!(first.len() >= 4 && first.len().is_power_of_two());
        }
        let counters = ThreadCounters::new();
        let run = counters.make_first(0).len();
        for i in [run, run + 1, 2 * run, 62] {
            let slot = counters.bucket_slot(i).expect("a slot past the first run");
            assert!(slot.add(LockFreeEvent::Success, 0));
            assert!(
                std::ptr::eq(slot, counters.bucket_slot(i).unwrap()),
                "the same one again"
            );
        }
        // The first run (4) and the buckets of indices 3-6 (4), 7-14 (8)
        // and 31-62 (32).
        assert_eq!(counters.slot_bytes(), (4 + 4 + 8 + 32) * 128);
    }

    #[test]
    fn the_overflow_moves_to_a_newer_epoch_and_refuses_an_older_one() {
        let _alone = alone();
        let counters = ThreadCounters::new();
        assert!(counters.add(LockFreeEvent::Success, 0)); // this thread's index
                                                          // Counts past the slots, as a thread without an index makes them.
        assert!(counters.add_without_slot(LockFreeEvent::Success, 0));
        assert!(counters.add_without_slot(LockFreeEvent::Success, 2));
        assert!(counters.add_without_slot(LockFreeEvent::Rejection, 2));
        assert!(
            !counters.add_without_slot(LockFreeEvent::Success, 1),
            "an older epoch"
        );
        let overflow = lock(&counters.table().overflow);
        assert_eq!(overflow.epoch, 2);
        let expected = LockFreeCounts {
            successes: 1,
            rejected: 1,
        };
        assert_eq!(overflow.counts, expected);
    }

    #[test]
    fn no_slot_is_made_until_a_thread_counts_and_then_only_the_first_run() {
        let _alone = alone();
        let counters = ThreadCounters::new();
        assert_eq!(counters.slot_bytes(), 0);
        std::thread::scope(|s| {
            s.spawn(|| assert!(counters.add(LockFreeEvent::Success, 0)));
        });
        // The lowest free index, 0: the run of the four lowest indices.
        assert_eq!(counters.slot_bytes(), 4 * 128);
        assert!(counters.table.get().is_none(), "no bucket yet");
    }

    #[test]
    fn indices_pass_from_exited_threads_to_new_ones_and_extra_threads_overflow() {
        let _alone = alone();
        let counters = Arc::new(ThreadCounters::new());
        let indices = (1usize << index::BUCKETS) - 1;
        // This thread holds the lowest index throughout, so the others
        // hand over higher ones.
        assert!(counters.add(LockFreeEvent::Success, 0));
        assert!(index::current().is_some());
        // Three times as many short-lived threads as indices, one after
        // another: each takes over the index, and the counts, one left.
        for _ in 0..indices * 3 {
            let c = counters.clone();
            std::thread::spawn(move || assert!(c.add(LockFreeEvent::Success, 0)))
                .join()
                .unwrap();
        }
        assert_eq!(counters.read(0).successes, indices as u64 * 3 + 1);
        assert_eq!(overflowed(&counters), 0, "no thread overflowed");
        // More live threads than indices: the extra ones overflow, nothing is lost.
        let barrier = Barrier::new(indices + 4);
        std::thread::scope(|s| {
            for _ in 0..indices + 4 {
                s.spawn(|| {
                    assert!(counters.add(LockFreeEvent::Success, 0));
                    barrier.wait();
                    assert!(counters.add(LockFreeEvent::Success, 0));
                });
            }
        });
        assert_eq!(
            counters.read(0).successes,
            indices as u64 * 3 + 1 + 2 * (indices as u64 + 4)
        );
        // Before the barrier all are alive: four found no index. (After
        // it, one may take an index an exited thread gave back.)
        assert!(overflowed(&counters) >= 4);
    }

    #[test]
    fn one_thread_counts_on_many_breakers() {
        let _alone = alone();
        let all: Vec<ThreadCounters> = (0..40).map(|_| ThreadCounters::new()).collect();
        for round in 1..=3 {
            for c in &all {
                assert!(c.add(LockFreeEvent::Success, 0));
            }
            for c in &all {
                assert_eq!(c.read(0).successes, round);
            }
        }
    }

    #[test]
    fn a_new_epoch_starts_from_zero_and_an_old_one_is_never_read_back() {
        let _alone = alone();
        let counters = ThreadCounters::new();
        assert!(counters.add(LockFreeEvent::Success, 0));
        assert!(counters.add(LockFreeEvent::Rejection, 0));
        // A reset moved the breaker to epoch 1: epoch 0's counts are gone.
        assert_eq!(counters.read(1), LockFreeCounts::default());
        // A late count of epoch 0 (it raced the reset) stays out of epoch 1.
        assert!(counters.add(LockFreeEvent::Success, 0));
        assert_eq!(counters.read(1), LockFreeCounts::default());
        assert!(counters.add(LockFreeEvent::Success, 1));
        assert_eq!(
            counters.read(1),
            LockFreeCounts {
                successes: 1,
                rejected: 0
            }
        );
        // Once the slot counts epoch 1, a late epoch-0 count is refused.
        assert!(!counters.add(LockFreeEvent::Success, 0));
        // Epochs wrap at 24 bits.
        assert!(is_after(0, 0x00ff_ffff));
        assert!(!is_after(0x00ff_ffff, 0));
    }
}

/// loom checks of the index hand-over: an exiting thread gives its index
/// back and the next thread counts on in the same slot, with nothing lost
/// or counted twice. Run with `RUSTFLAGS="--cfg loom" cargo test -p
/// breakerbox-std --lib --release`.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    #[test]
    fn an_index_handed_over_keeps_every_count() {
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let handed_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen_hand_over = handed_over.clone();
        loom::model(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let counters = Arc::new(ThreadCounters::default());
            let spawn = |n: u64| {
                let c = counters.clone();
                thread::spawn(move || {
                    for _ in 0..n {
                        assert!(c.add(LockFreeEvent::Success, 0));
                    }
                    let i = index::current();
                    index::release();
                    i
                })
            };
            let (a, b) = (spawn(1), spawn(2));
            let during = counters.read(0).successes;
            assert!(during <= 3, "{during}");
            let (a, b) = (a.join().unwrap(), b.join().unwrap());
            if a == b {
                seen_hand_over.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            assert_eq!(counters.read(0).successes, 3, "indices {a:?} and {b:?}");
        });
        assert!(runs.load(std::sync::atomic::Ordering::SeqCst) > 1);
        assert!(
            handed_over.load(std::sync::atomic::Ordering::SeqCst),
            "some interleaving handed one index from one thread to the other"
        );
    }
}
