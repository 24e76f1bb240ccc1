//! Breakers by name or by key, made on first use.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use breakerbox_core::{Clock, State, TripPolicy};

use crate::breaker::StdBreaker;
use crate::clock::MonotonicClock;

/// Any trip policy, boxed: the policy type of a [`Registry`] whose breakers
/// trip by different rules (a [`StdBreakerBuilder::boxed`](crate::StdBreakerBuilder::boxed)
/// breaker). A trait object rather than an enum of the shipped policies,
/// because the windows' sizes are const generics (`CountWindow<20>` and
/// `CountWindow<100>` are different types) and your own policies belong in
/// the registry too. It costs one indirect call per recorded outcome; the
/// closed path's lock-free admissions and no-op successes make none.
pub type AnyPolicy = Box<dyn TripPolicy + Send>;

type Factory<K, P, C, const H: usize> = Box<dyn Fn(&K) -> StdBreaker<P, C, H> + Send + Sync>;

/// One key's breaker, made once, outside the registry's lock.
struct Slot<P, C, const H: usize> {
    breaker: OnceLock<StdBreaker<P, C, H>>,
    /// Set by every lookup, cleared by an eviction's sweep: the breakers
    /// nobody asked for since the last eviction go first.
    used: AtomicBool,
}

/// Hands out breakers by name (or by any key: a host, a tenant), making
/// each with a factory the first time its key is asked for. Safe to call
/// from many threads: concurrent first uses of one key all get the same
/// breaker, made once. The factory runs with no lock of the registry held:
/// a slow factory delays only the first users of its own key, and it may
/// use the registry for other keys.
///
/// Its breakers may trip by different rules: the default policy type is
/// [`AnyPolicy`], and [`boxed`](crate::StdBreakerBuilder::boxed) makes one.
///
/// ```
/// use breakerbox_std::{Config, ConsecutiveFailures, CountWindow, Ratio, Registry, StdBreaker, Thresholds};
///
/// let registry = Registry::new(|name| {
///     let builder = if name == "search" {
///         let half = Thresholds::new().failure_rate(Ratio::percent(50));
///         StdBreaker::builder(Config::DEFAULT, CountWindow::<20>::new(half).unwrap()).boxed()
///     } else {
///         StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap()).boxed()
///     };
///     builder.name(name).build()
/// });
/// let db = registry.get("db");
/// let search = registry.get("search");
/// assert_eq!((db.name(), search.name()), ("db", "search"));
/// for (name, breaker) in &registry {
///     assert_eq!(breaker.name(), name); // in no particular order
/// }
/// assert_eq!(registry.names(), ["db", "search"]); // sorted
/// ```
///
/// A breaker per host, at most 1,000 kept:
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// use breakerbox_std::{Config, ConsecutiveFailures, Registry, StdBreaker};
///
/// let hosts = Registry::keyed(|host: &SocketAddr| {
///     StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap())
///         .name(format!("upstream {host}"))
///         .build()
/// })
/// .bounded(1_000);
/// let host = SocketAddr::from((Ipv4Addr::LOCALHOST, 8080));
/// assert_eq!(hosts.get(&host).name(), "upstream 127.0.0.1:8080");
/// ```
pub struct Registry<K = String, P = AnyPolicy, C = MonotonicClock, const H: usize = 4> {
    make: Factory<K, P, C, H>,
    limit: Option<usize>,
    slots: RwLock<HashMap<K, Arc<Slot<P, C, H>>>>,
    evictions: AtomicU64,
}

impl<P: TripPolicy, C: Clock, const H: usize> Registry<String, P, C, H> {
    /// A registry of breakers by name, made with `make(name)`.
    pub fn new(make: impl Fn(&str) -> StdBreaker<P, C, H> + Send + Sync + 'static) -> Self {
        Registry::keyed(move |name: &String| make(name))
    }

    /// The names of the breakers made so far, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.iter().map(|(name, _)| name).collect();
        names.sort();
        names
    }
}

impl<K, P, C, const H: usize> Registry<K, P, C, H>
where
    K: Hash + Eq + Clone,
    P: TripPolicy,
    C: Clock,
{
    /// A registry of breakers by key (a host, a tenant), made with
    /// `make(key)`; the factory names each breaker, for its events and
    /// metrics.
    pub fn keyed(make: impl Fn(&K) -> StdBreaker<P, C, H> + Send + Sync + 'static) -> Self {
        Registry {
            make: Box::new(make),
            limit: None,
            slots: RwLock::new(HashMap::new()),
            evictions: AtomicU64::new(0),
        }
    }

    /// Keeps at most `limit` breakers (at least one). A new key past the
    /// limit first drops one breaker: one nobody asked for since the last
    /// drop, a closed one before any other (dropping an open breaker
    /// forgets that its dependency is down), and of those the first the
    /// sweep meets. The sweep looks at every breaker kept, under the
    /// registry's write lock: a drop costs O(limit), a lookup nothing more.
    /// A dropped breaker goes on working for whoever holds it, but is no
    /// longer in the registry, its iteration or its metrics; its key gets a
    /// new one if asked again.
    pub fn bounded(mut self, limit: usize) -> Self {
        self.limit = Some(limit.max(1));
        self
    }

    /// The breaker for `key`, made now if it is the first ask. (A factory
    /// that asks for its own key waits for itself for ever.)
    pub fn get<Q>(&self, key: &Q) -> StdBreaker<P, C, H>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let slot = {
            let slots = self.read();
            match slots.get(key) {
                Some(slot) => {
                    // A load first: a key in steady use writes nothing shared.
                    if !slot.used.load(Ordering::Relaxed) {
                        slot.used.store(true, Ordering::Relaxed);
                    }
                    if let Some(breaker) = slot.breaker.get() {
                        return breaker.clone();
                    }
                    slot.clone()
                }
                None => {
                    drop(slots);
                    self.insert(key.to_owned())
                }
            }
        };
        // The first ask of a key (or a racing one): make it for a copy of
        // the key, the map's own being under its lock.
        let key = key.to_owned();
        slot.breaker.get_or_init(|| (self.make)(&key)).clone()
    }

    /// Adds an empty slot for `key` (or finds the one a racing thread
    /// added), dropping one past the limit.
    fn insert(&self, key: K) -> Arc<Slot<P, C, H>> {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(&key) {
            return slot.clone();
        }
        if let Some(limit) = self.limit {
            while slots.len() >= limit {
                let Some(victim) = choose_victim(&slots) else {
                    break;
                };
                slots.remove(&victim);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let slot = Arc::new(Slot {
            breaker: OnceLock::new(),
            used: AtomicBool::new(true),
        });
        slots.insert(key, slot.clone());
        slot
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, Arc<Slot<P, C, H>>>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The breaker for `key`, if it was made (and not dropped).
    pub fn existing<Q>(&self, key: &Q) -> Option<StdBreaker<P, C, H>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read()
            .get(key)
            .and_then(|slot| slot.breaker.get().cloned())
    }

    /// Drops the breaker for `key` from the registry, giving it back.
    pub fn remove<Q>(&self, key: &Q) -> Option<StdBreaker<P, C, H>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots
            .remove(key)
            .and_then(|slot| slot.breaker.get().cloned())
    }

    /// Every `(key, breaker)` made so far, in no particular order: a
    /// snapshot, so no lock is held while you go through it.
    pub fn iter(&self) -> std::vec::IntoIter<(K, StdBreaker<P, C, H>)> {
        self.read()
            .iter()
            .filter_map(|(k, slot)| slot.breaker.get().map(|b| (k.clone(), b.clone())))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// How many breakers were made (and kept).
    pub fn len(&self) -> usize {
        self.read()
            .values()
            .filter(|slot| slot.breaker.get().is_some())
            .count()
    }

    /// Whether none was made yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many breakers the limit has dropped so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Publishes every breaker's metrics (see
    /// [`StdBreaker::export_metrics`]): one call from the scrape handler
    /// keeps every series current.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn export_metrics(&self) {
        for (_, breaker) in self.iter() {
            breaker.export_metrics();
        }
    }
}

/// The key to drop: not used since the last sweep before used, closed (or
/// not made yet) before any other state; the sweep clears every use mark.
fn choose_victim<K: Clone, P: TripPolicy, C: Clock, const H: usize>(
    slots: &HashMap<K, Arc<Slot<P, C, H>>>,
) -> Option<K> {
    let rank = |slot: &Slot<P, C, H>| {
        let used = slot.used.load(Ordering::Relaxed);
        let closed = slot
            .breaker
            .get()
            .is_none_or(|b| b.state() == State::Closed);
        // Lower is dropped first.
        u8::from(used) * 2 + u8::from(!closed)
    };
    let mut best: Option<(u8, &K)> = None;
    for (key, slot) in slots {
        let r = rank(slot);
        if best.is_none_or(|(b, _)| r < b) {
            best = Some((r, key));
            if r == 0 {
                break;
            }
        }
    }
    let victim = best.map(|(_, k)| k.clone());
    for slot in slots.values() {
        slot.used.store(false, Ordering::Relaxed);
    }
    victim
}

impl<K, P: TripPolicy, C: Clock, const H: usize> IntoIterator for &Registry<K, P, C, H>
where
    K: Hash + Eq + Clone,
{
    type Item = (K, StdBreaker<P, C, H>);
    type IntoIter = std::vec::IntoIter<(K, StdBreaker<P, C, H>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K, P: TripPolicy, C: Clock, const H: usize> fmt::Debug for Registry<K, P, C, H> {
    /// The names of the breakers it holds, sorted; never waits for the
    /// registry's lock (a registry busy making a breaker says so).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Registry");
        match self.slots.try_read() {
            Ok(slots) => {
                let mut names: Vec<&str> = slots
                    .values()
                    .filter_map(|slot| slot.breaker.get().map(StdBreaker::name))
                    .collect();
                names.sort_unstable();
                d.field("breakers", &names);
            }
            Err(_) => {
                d.field("breakers", &format_args!("(busy)"));
            }
        }
        if let Some(limit) = self.limit {
            d.field("limit", &limit);
        }
        d.finish_non_exhaustive()
    }
}
