//! A registry of breakers with different policies, by name and by key.
#![cfg(not(loom))]

use breakerbox_std::{
    AnyPolicy, Config, ConsecutiveFailures, CountWindow, Ratio, Registry, SharedManualClock, State,
    StdBreaker, Thresholds,
};

fn fail() -> Result<(), &'static str> {
    Err("down")
}

fn ok() -> Result<(), &'static str> {
    Ok(())
}

type Breaker = StdBreaker<AnyPolicy, SharedManualClock>;

/// `db` trips on 2 failures in a row, `search` on half of its last 4 calls.
fn mixed(clock: &SharedManualClock) -> Registry<String, AnyPolicy, SharedManualClock> {
    let clock = clock.clone();
    Registry::new(move |name| {
        let builder = if name == "search" {
            let half = Thresholds::new()
                .failure_rate(Ratio::percent(50))
                .minimum_calls(4);
            StdBreaker::builder(Config::DEFAULT, CountWindow::<4>::new(half).unwrap()).boxed()
        } else {
            StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(2).unwrap()).boxed()
        };
        builder.clock(clock.clone()).name(name).build()
    })
}

#[test]
fn breakers_with_different_policies_trip_by_their_own_rules() {
    let clock = SharedManualClock::new();
    let registry = mixed(&clock);
    let (db, search): (Breaker, Breaker) = (registry.get("db"), registry.get("search"));
    // fail, ok, fail: no run of 2 for db, but 2 of 3 calls for search…
    for op in [fail, ok, fail] {
        let _ = db.call(op);
        let _ = search.call(op);
    }
    assert_eq!(db.state(), State::Closed);
    assert_eq!(search.state(), State::Closed, "3 calls: below the minimum");
    // …and at the 4th call (a success), 2 of 4 failed: search trips alone.
    let _ = db.call(ok);
    let _ = search.call(ok);
    assert_eq!(db.state(), State::Closed);
    assert_eq!(search.state(), State::Open);
    let _ = db.call(fail);
    let _ = db.call(fail);
    assert_eq!(db.state(), State::Open);
}

#[test]
fn iteration_gives_every_breaker_with_its_name() {
    let registry = mixed(&SharedManualClock::new());
    for name in ["search", "db", "cache", "db"] {
        let _ = registry.get(name);
    }
    let mut seen: Vec<(String, String)> = registry
        .iter()
        .map(|(name, breaker)| (name, breaker.name().to_owned()))
        .collect();
    seen.sort();
    let pairs = |n: &str| (n.to_owned(), n.to_owned());
    assert_eq!(seen, [pairs("cache"), pairs("db"), pairs("search")]);
    assert_eq!(registry.names(), ["cache", "db", "search"]);
    assert_eq!((&registry).into_iter().count(), 3);
    let removed = registry.remove("cache").expect("it was there");
    assert_eq!(removed.name(), "cache");
    assert_eq!(registry.names(), ["db", "search"]);
}

/// A breaker per host, at most 3 kept: past the limit the registry drops
/// one nobody used since the last drop, closed before open, and counts it.
#[test]
fn a_bounded_registry_drops_idle_closed_breakers_first() {
    let clock = SharedManualClock::new();
    let c = clock.clone();
    let hosts = Registry::keyed(move |port: &u16| {
        StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
            .clock(c.clone())
            .name(format!("host:{port}"))
            .build()
    })
    .bounded(3);
    let _ = hosts.get(&1).call(fail); // host 1 is down: open
    let _ = hosts.get(&2);
    let _ = hosts.get(&3);
    assert_eq!((hosts.len(), hosts.evictions()), (3, 0));

    // Every breaker was used since the last sweep: a closed one goes (2 or
    // 3), never the open one.
    let _ = hosts.get(&4);
    assert_eq!((hosts.len(), hosts.evictions()), (3, 1));
    assert_eq!(hosts.existing(&1).map(|b| b.state()), Some(State::Open));
    let kept: Vec<u16> = [2, 3]
        .into_iter()
        .filter(|k| hosts.existing(k).is_some())
        .collect();
    assert_eq!(kept.len(), 1);

    // Now only 4 is marked used (the sweep cleared the rest): the idle
    // closed one goes, not 4, and still not the open one.
    let _ = hosts.get(&4);
    let _ = hosts.get(&5);
    assert_eq!((hosts.len(), hosts.evictions()), (3, 2));
    assert!(hosts.existing(&1).is_some(), "the open breaker is kept");
    assert!(hosts.existing(&4).is_some(), "the breaker in use is kept");
    assert!(hosts.existing(&kept[0]).is_none());

    // A dropped key asked again gets a new, closed breaker.
    let again = hosts.get(&kept[0]);
    assert_eq!(again.state(), State::Closed);
    assert_eq!(hosts.len(), 3);
}

#[test]
fn a_limit_below_one_keeps_one() {
    let registry = Registry::new(|name| {
        StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::default())
            .name(name)
            .build()
    })
    .bounded(0);
    let _ = registry.get("a");
    let b = registry.get("b");
    assert_eq!(registry.names(), ["b"]);
    assert_eq!(b.name(), "b");
}

/// A thousand keys spread over every one of the registry's tables: each
/// made once, found by `get`, `with` and `existing` alike, and dropped by
/// `remove` and by the bound without losing any other. Under Miri, where
/// each drop's sweep of the 64 tables takes most of a second, 64 keys and
/// a bound of 8 check the same code for undefined behaviour.
#[test]
fn many_keys_are_each_made_once_and_found_by_every_lookup() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let (keys, bound) = if cfg!(miri) {
        (64u32, 8)
    } else {
        (1_000u32, 100)
    };

    let made = Arc::new(AtomicUsize::new(0));
    let counter = made.clone();
    let registry = Registry::keyed(move |host: &u32| {
        counter.fetch_add(1, Ordering::Relaxed);
        StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
            .name(format!("host-{host}"))
            .build()
    });
    for host in 0..keys {
        let name = registry.with(&host, |b| b.name().to_owned());
        assert_eq!(name, format!("host-{host}"));
    }
    for host in 0..keys {
        assert_eq!(registry.get(&host).name(), format!("host-{host}"));
    }
    assert_eq!(
        (made.load(Ordering::Relaxed), registry.len()),
        (keys as usize, keys as usize)
    );
    // One breaker behind every lookup: tripped through `with`, open for `get`.
    let _ = registry.with(&7, |b| b.call(fail));
    assert_eq!(registry.get(&7).state(), State::Open);
    assert_eq!(
        registry.existing(&8).map(|b| b.state()),
        Some(State::Closed)
    );
    assert_eq!(registry.remove(&7).map(|b| b.state()), Some(State::Open));
    assert!(registry.existing(&7).is_none());
    assert_eq!(registry.len(), keys as usize - 1);
    assert_eq!(registry.get(&7).state(), State::Closed, "a new breaker");
    assert_eq!(made.load(Ordering::Relaxed), keys as usize + 1);

    let bounded = Registry::keyed(|host: &u32| {
        StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
            .name(format!("host-{host}"))
            .build()
    })
    .bounded(bound);
    for host in 0..keys {
        bounded.with(&host, |_| ());
    }
    assert_eq!(
        (bounded.len(), bounded.evictions()),
        (bound, (keys as usize - bound) as u64)
    );
    assert!(
        bounded.existing(&(keys - 1)).is_some(),
        "the newest is kept"
    );
}
