//! Every synchronisation primitive the adapter uses, in one place, so that
//! `--cfg loom` can swap in loom's model-checked versions.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};

/// Locks `mutex`, carrying on past poisoning: the core never panics while
/// holding it, and a panicking user policy must not wedge the breaker.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(not(loom))]
pub(crate) use std::sync::OnceLock;

/// `std::sync::OnceLock` under loom: a loom mutex, so loom sees the value
/// made by one thread published to the others. (Each value is leaked: for
/// model checks only.)
#[cfg(loom)]
pub(crate) struct OnceLock<T: 'static> {
    cell: Mutex<Option<&'static T>>,
}

#[cfg(loom)]
impl<T: 'static> OnceLock<T> {
    pub(crate) fn new() -> Self {
        OnceLock {
            cell: Mutex::new(None),
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        *lock(&self.cell)
    }

    pub(crate) fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        let mut cell = lock(&self.cell);
        match *cell {
            Some(value) => value,
            None => *cell.insert(Box::leak(Box::new(make()))),
        }
    }
}

#[cfg(loom)]
impl<T: 'static> Default for OnceLock<T> {
    fn default() -> Self {
        OnceLock::new()
    }
}
