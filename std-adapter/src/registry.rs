//! Breakers by name or by key, made on first use.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use hashbrown::HashTable;

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

/// One key's breaker, made once, outside any lock of the registry.
struct Slot<K, P, C, const H: usize> {
    key: K,
    /// The key's hash, kept so a copied table never hashes a key again.
    hash: u64,
    breaker: OnceLock<StdBreaker<P, C, H>>,
    /// Set by every lookup, cleared by an eviction's sweep: the breakers
    /// nobody asked for since the last eviction go first.
    used: AtomicBool,
}

type SlotRef<K, P, C, const H: usize> = Arc<Slot<K, P, C, H>>;
type Table<K, P, C, const H: usize> = HashTable<SlotRef<K, P, C, H>>;

/// The tables a registry's keys are spread over. A new key copies its
/// shard's table, so more shards make adding keys cheaper; 64 keeps the
/// copy of a 10,000-breaker registry to about 160 pointers.
const SHARDS: usize = 64;

fn shard_of(hash: u64) -> usize {
    // Bits that hashbrown uses for neither the bucket (low bits) nor its
    // control byte (top seven), so each shard's table spreads as well as
    // one table would.
    (hash >> 32) as usize % SHARDS
}

/// Hands out breakers by name (or by any key: a host, a tenant), making
/// each with a factory the first time its key is asked for. Safe to call
/// from many threads: concurrent first uses of one key all get the same
/// breaker, made once. The factory runs with no lock of the registry held:
/// a slow factory delays only the first users of its own key, and it may
/// use the registry for other keys.
///
/// A lookup takes no lock and writes nothing another thread reads, apart
/// from reference counts ([`with`](Registry::with) makes none): it hashes
/// the key once (foldhash, seeded per registry) and reads one table. Adding or dropping a key
/// copies one of the registry's 64 tables, so it costs O(len / 64).
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
    hasher: foldhash::fast::RandomState,
    /// Read without a lock: a lookup loads its shard's current table (a
    /// read of the calling thread's own slot in `arc-swap`, no shared
    /// write) and finds the key in it. Changes copy the table and swap
    /// the copy in, one writer at a time.
    shards: [ArcSwap<Table<K, P, C, H>>; SHARDS],
    writer: Mutex<()>,
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
            hasher: foldhash::fast::RandomState::default(),
            shards: std::array::from_fn(|_| ArcSwap::from_pointee(HashTable::new())),
            writer: Mutex::new(()),
            evictions: AtomicU64::new(0),
        }
    }

    /// Keeps at most `limit` breakers (at least one). A new key past the
    /// limit first drops one breaker: one nobody asked for since the last
    /// drop, a closed one before any other (dropping an open breaker
    /// forgets that its dependency is down), and of those the first the
    /// sweep meets. The sweep looks at every breaker kept: a drop costs
    /// O(limit), a lookup nothing more. A dropped breaker goes on working
    /// for whoever holds it, but is no longer in the registry, its
    /// iteration or its metrics; its key gets a new one if asked again.
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
        let hash = self.hasher.hash_one(key);
        if let Ok(breaker) = self.lend(hash, key, StdBreaker::clone) {
            return breaker;
        }
        // The first ask of a key (or a racing one): its slot, then its
        // breaker, made with no lock held.
        let slot = match self.find(hash, key) {
            Some(slot) => slot,
            None => self.insert(key.to_owned(), hash),
        };
        slot.breaker.get_or_init(|| (self.make)(&slot.key)).clone()
    }

    /// Runs `f` on the breaker for `key` (made now if it is the first
    /// ask), lent rather than handed out: where [`get`](Self::get) bumps
    /// the breaker's reference count, a shared write, this writes nothing
    /// another thread reads, so lookups on many threads never contend.
    ///
    /// ```
    /// use breakerbox_std::{Config, ConsecutiveFailures, Registry, StdBreaker};
    ///
    /// let registry = Registry::new(|name| {
    ///     StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap())
    ///         .name(name)
    ///         .build()
    /// });
    /// let answer = registry.with("db", |db| db.call(|| Ok::<_, ()>(42)));
    /// assert_eq!(answer, Ok(42));
    /// ```
    pub fn with<Q, R>(&self, key: &Q, f: impl FnOnce(&StdBreaker<P, C, H>) -> R) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.lend(hash, key, f)
            .unwrap_or_else(|f| f(&self.get(key)))
    }

    /// Runs `f` on the breaker for `key` (whose hash is `hash`) if it was
    /// made, marking it used, and touches no reference count; gives `f`
    /// back if there is no breaker yet.
    fn lend<Q, R, F>(&self, hash: u64, key: &Q, f: F) -> Result<R, F>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        F: FnOnce(&StdBreaker<P, C, H>) -> R,
    {
        let table = self.shards[shard_of(hash)].load();
        let found = table.find(hash, |slot| slot.key.borrow() == key);
        let Some((slot, breaker)) = found.and_then(|s| Some((s, s.breaker.get()?))) else {
            return Err(f);
        };
        // A load first: a key in steady use writes nothing shared.
        if !slot.used.load(Ordering::Relaxed) {
            slot.used.store(true, Ordering::Relaxed);
        }
        Ok(f(breaker))
    }

    /// The slot of `key` (whose hash is `hash`), if it has one.
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<Arc<Slot<K, P, C, H>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.shards[shard_of(hash)]
            .load()
            .find(hash, |slot| slot.key.borrow() == key)
            .cloned()
    }

    /// Changes one shard's table: a copy, changed by `change`, swapped in.
    /// Callers hold the writer lock, so no change is lost.
    fn change_shard<T>(&self, hash: u64, change: impl FnOnce(&mut Table<K, P, C, H>) -> T) -> T {
        let shard = &self.shards[shard_of(hash)];
        let mut table = Table::clone(&shard.load());
        let answer = change(&mut table);
        shard.store(Arc::new(table));
        answer
    }

    fn write_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an empty slot for `key` (or finds the one a racing thread
    /// added), dropping one past the limit.
    fn insert(&self, key: K, hash: u64) -> Arc<Slot<K, P, C, H>> {
        let _writer = self.write_lock();
        if let Some(slot) = self.find(hash, key.borrow()) {
            return slot;
        }
        if let Some(limit) = self.limit {
            while self.slot_count() >= limit {
                let Some(victim) = self.choose_victim() else {
                    break;
                };
                self.change_shard(victim.hash, |table| {
                    if let Ok(entry) = table.find_entry(victim.hash, |s| Arc::ptr_eq(s, &victim)) {
                        entry.remove();
                    }
                });
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let slot = Arc::new(Slot {
            key,
            hash,
            breaker: OnceLock::new(),
            used: AtomicBool::new(true),
        });
        self.change_shard(hash, |table| {
            table.insert_unique(hash, slot.clone(), |s| s.hash);
        });
        slot
    }

    /// Every slot, made or being made.
    fn slots(&self) -> impl Iterator<Item = Arc<Slot<K, P, C, H>>> + '_ {
        self.shards
            .iter()
            .flat_map(|shard| shard.load_full().iter().cloned().collect::<Vec<_>>())
    }

    fn slot_count(&self) -> usize {
        self.shards.iter().map(|shard| shard.load().len()).sum()
    }

    /// The slot to drop: not used since the last sweep before used, closed
    /// (or not made yet) before any other state; the sweep clears every
    /// use mark.
    fn choose_victim(&self) -> Option<Arc<Slot<K, P, C, H>>> {
        let rank = |slot: &Slot<K, P, C, H>| {
            let used = slot.used.load(Ordering::Relaxed);
            let closed = slot
                .breaker
                .get()
                .is_none_or(|b| b.state() == State::Closed);
            // Lower is dropped first.
            u8::from(used) * 2 + u8::from(!closed)
        };
        let mut best: Option<(u8, SlotRef<K, P, C, H>)> = None;
        for shard in &self.shards {
            // Read in place: a drop copies nothing but the one slot it keeps.
            for slot in shard.load().iter() {
                let r = rank(slot);
                slot.used.store(false, Ordering::Relaxed);
                if best.as_ref().is_none_or(|(b, _)| r < *b) {
                    best = Some((r, slot.clone()));
                }
            }
        }
        best.map(|(_, slot)| slot)
    }

    /// The breaker for `key`, if it was made (and not dropped). A look
    /// that does not count as use: a bounded registry may still drop it.
    pub fn existing<Q>(&self, key: &Q) -> Option<StdBreaker<P, C, H>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.find(self.hasher.hash_one(key), key)?;
        slot.breaker.get().cloned()
    }

    /// Drops the breaker for `key` from the registry, giving it back.
    pub fn remove<Q>(&self, key: &Q) -> Option<StdBreaker<P, C, H>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let _writer = self.write_lock();
        self.find(hash, key)?;
        let slot = self.change_shard(hash, |table| {
            let entry = table.find_entry(hash, |s| s.key.borrow() == key).ok()?;
            Some(entry.remove().0)
        })?;
        slot.breaker.get().cloned()
    }

    /// Every `(key, breaker)` made so far, in no particular order: a
    /// snapshot, so nothing is held while you go through it.
    pub fn iter(&self) -> std::vec::IntoIter<(K, StdBreaker<P, C, H>)> {
        self.slots()
            .filter_map(|slot| slot.breaker.get().map(|b| (slot.key.clone(), b.clone())))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// How many breakers were made (and kept).
    pub fn len(&self) -> usize {
        self.slots()
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
    /// The names of the breakers it holds, sorted; never waits (the
    /// registry has no lock a reader takes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Registry");
        let tables: Vec<_> = self.shards.iter().map(ArcSwap::load_full).collect();
        let mut names: Vec<&str> = tables
            .iter()
            .flat_map(|table| table.iter())
            .filter_map(|slot| slot.breaker.get().map(StdBreaker::name))
            .collect();
        names.sort_unstable();
        d.field("breakers", &names);
        if let Some(limit) = self.limit {
            d.field("limit", &limit);
        }
        d.finish_non_exhaustive()
    }
}
