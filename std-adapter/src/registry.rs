//! Breakers by name, made on first use.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use breakerbox_core::{Clock, TripPolicy};

use crate::breaker::StdBreaker;

type Factory<P, C, const H: usize> = Box<dyn Fn(&str) -> StdBreaker<P, C, H> + Send + Sync>;

/// A name's breaker, made once, outside the registry's lock.
type Cell<P, C, const H: usize> = Arc<OnceLock<StdBreaker<P, C, H>>>;

/// Hands out breakers by name, making each with a factory the first time
/// its name is asked for. Safe to call from many threads: concurrent first
/// uses of one name all get the same breaker, made once.
///
/// The factory runs with no lock of the registry held: a slow factory
/// delays only the first users of its own name, and it may use the
/// registry for other names.
///
/// ```
/// use breakerbox_std::{Config, ConsecutiveFailures, Registry, StdBreaker};
///
/// let registry = Registry::new(|name| {
///     StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap()).name(name).build()
/// });
/// let db = registry.get("db");
/// assert_eq!(db.name(), "db");
/// assert_eq!(registry.len(), 1);
/// ```
pub struct Registry<P, C, const H: usize = 4> {
    make: Factory<P, C, H>,
    breakers: RwLock<HashMap<String, Cell<P, C, H>>>,
}

impl<P: TripPolicy, C: Clock, const H: usize> Registry<P, C, H> {
    /// A registry that makes breakers with `make(name)`.
    pub fn new(make: impl Fn(&str) -> StdBreaker<P, C, H> + Send + Sync + 'static) -> Self {
        Registry {
            make: Box::new(make),
            breakers: RwLock::new(HashMap::new()),
        }
    }

    /// The breaker called `name`, made now if it is the first ask. (A
    /// factory that asks for its own name waits for itself for ever.)
    pub fn get(&self, name: &str) -> StdBreaker<P, C, H> {
        let cell = self.cell(name);
        cell.get_or_init(|| (self.make)(name)).clone()
    }

    /// The cell of `name`, added empty if it is new.
    fn cell(&self, name: &str) -> Cell<P, C, H> {
        if let Some(cell) = self.read().get(name) {
            return cell.clone();
        }
        let mut breakers = self.breakers.write().unwrap_or_else(|p| p.into_inner());
        breakers.entry(name.to_owned()).or_default().clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Cell<P, C, H>>> {
        self.breakers.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The breaker called `name`, if it was made.
    pub fn existing(&self, name: &str) -> Option<StdBreaker<P, C, H>> {
        self.read().get(name).and_then(|cell| cell.get().cloned())
    }

    /// The names of the breakers made so far, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, cell)| cell.get().is_some())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// How many breakers were made.
    pub fn len(&self) -> usize {
        self.read()
            .values()
            .filter(|cell| cell.get().is_some())
            .count()
    }

    /// Whether none was made yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<P, C, const H: usize> std::fmt::Debug for Registry<P, C, H> {
    /// The names of the breakers it holds, sorted; never waits for the
    /// registry's lock (a registry busy making a breaker says so).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Registry");
        match self.breakers.try_read() {
            Ok(breakers) => {
                let mut names: Vec<&str> = breakers.keys().map(String::as_str).collect();
                names.sort_unstable();
                d.field("breakers", &names);
            }
            Err(_) => {
                d.field("breakers", &format_args!("(busy)"));
            }
        }
        d.finish_non_exhaustive()
    }
}
