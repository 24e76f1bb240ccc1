//! Breakers by name, made on first use.

use std::collections::HashMap;

use breakerbox_core::{Clock, TripPolicy};

use crate::breaker::StdBreaker;
use crate::sync::RwLock;

type Factory<P, C, const H: usize> = Box<dyn Fn(&str) -> StdBreaker<P, C, H> + Send + Sync>;

/// Hands out breakers by name, making each with a factory the first time
/// its name is asked for. Safe to call from many threads: concurrent first
/// uses of one name all get the same breaker.
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
    breakers: RwLock<HashMap<String, StdBreaker<P, C, H>>>,
}

impl<P: TripPolicy, C: Clock, const H: usize> Registry<P, C, H> {
    /// A registry that makes breakers with `make(name)`.
    pub fn new(make: impl Fn(&str) -> StdBreaker<P, C, H> + Send + Sync + 'static) -> Self {
        Registry {
            make: Box::new(make),
            breakers: RwLock::new(HashMap::new()),
        }
    }

    /// The breaker called `name`, made now if it is the first ask. The
    /// factory runs with no lock held, so it may be slow or use the
    /// registry itself; if two threads make the same name at once, both
    /// get the breaker that was stored first.
    pub fn get(&self, name: &str) -> StdBreaker<P, C, H> {
        if let Some(b) = self.existing(name) {
            return b;
        }
        let made = (self.make)(name);
        let mut breakers = self.breakers.write().unwrap_or_else(|p| p.into_inner());
        breakers.entry(name.to_owned()).or_insert(made).clone()
    }

    /// The breaker called `name`, if it was made.
    pub fn existing(&self, name: &str) -> Option<StdBreaker<P, C, H>> {
        let breakers = self.breakers.read().unwrap_or_else(|p| p.into_inner());
        breakers.get(name).cloned()
    }

    /// The names of the breakers made so far, sorted.
    pub fn names(&self) -> Vec<String> {
        let breakers = self.breakers.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = breakers.keys().cloned().collect();
        names.sort();
        names
    }

    /// How many breakers were made.
    pub fn len(&self) -> usize {
        self.breakers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether none was made yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<P, C, const H: usize> std::fmt::Debug for Registry<P, C, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}
