//! Prints the `size_of` tables of `docs/sizes.md` and `docs/policies.md`
//! (generated, never typed by hand), with the heap a `StdBreaker` takes,
//! measured by a counting allocator.
//!
//! `cargo run --example sizes` prints them; `cargo run --example sizes -- --update-docs`
//! rewrites the tables in place. A test checks the pages are current.

use core::mem::size_of;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use breakerbox::{
    Admission, Breaker, Config, ConsecutiveFailures, CountWindow, Counts, Guard, ManualClock,
    Metrics, MonotonicClock, NoClock, Permit, Phase, ReadyToTrip, Registry, Report, RunCounts,
    SharedBreaker, StdBreaker, TimeWindow, Transition,
};

/// Counts the bytes a measuring thread's allocations ask for and its frees
/// give back (other threads, such as a test harness's, allocate at times of
/// their own): what stays is what a value holds.
struct CountingHeap;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // No destructor: readable from the allocator at any time.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MEASURING.try_with(Cell::get).unwrap_or(false) {
            ALLOCATED.fetch_add(layout.size(), Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if MEASURING.try_with(Cell::get).unwrap_or(false) {
            FREED.fetch_add(layout.size(), Ordering::SeqCst);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: CountingHeap = CountingHeap;

/// `f`'s result and the heap bytes this thread allocated while it ran and
/// still holds (a temporary, such as a metrics key, is not counted).
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    MEASURING.with(|m| m.set(true));
    let before = (
        ALLOCATED.load(Ordering::SeqCst),
        FREED.load(Ordering::SeqCst),
    );
    let value = f();
    let allocated = ALLOCATED.load(Ordering::SeqCst) - before.0;
    let freed = FREED.load(Ordering::SeqCst) - before.1;
    MEASURING.with(|m| m.set(false));
    (value, allocated.saturating_sub(freed))
}

/// Heap bytes of a default `StdBreaker`: when built, and what one thread's
/// first lock-free count on it adds.
pub fn std_breaker_heap() -> (usize, usize) {
    let policy = || ConsecutiveFailures::new(5).unwrap();
    let (breaker, built) = allocated_by(|| StdBreaker::new(Config::DEFAULT, policy()));
    let first_count = std::thread::scope(|s| {
        s.spawn(|| {
            // This thread's index and its exit hook are set up once for all
            // breakers: take them on another breaker first.
            let other = StdBreaker::new(Config::DEFAULT, policy());
            let _ = other.call(|| Ok::<_, ()>(()));
            let _ = other.call(|| Ok::<_, ()>(()));
            let ok = || Ok::<_, ()>(());
            // The first success publishes that successes are free, under
            // the lock; the second is counted lock-free.
            allocated_by(|| (breaker.call(ok), breaker.call(ok))).1
        })
        .join()
        .unwrap()
    });
    (built, first_count)
}

/// Idle breakers in the registry [`registry_heap`] measures.
const IDLE: usize = 10_000;

/// Heap bytes a registry holds for [`IDLE`] idle named breakers (names
/// `host-0` …), map and names included.
pub fn registry_heap() -> usize {
    let (registry, bytes) = allocated_by(|| {
        let registry = Registry::new(|name| {
            StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap())
                .name(name)
                .build()
        });
        for i in 0..IDLE {
            let _ = registry.get(format!("host-{i}").as_str());
        }
        registry
    });
    assert_eq!(registry.len(), IDLE);
    bytes
}

/// The README's table, in Markdown, for the machine this runs on.
pub fn table() -> String {
    let (heap_built, heap_first_count) = std_breaker_heap();
    let registry_total = registry_heap();
    type Consecutive<const H: usize> = Breaker<ConsecutiveFailures, NoClock, H>;
    let history_entry = size_of::<Transition>();
    let whole = size_of::<Consecutive<1>>() - history_entry;
    let state =
        whole - size_of::<Config>() - size_of::<Counts>() - size_of::<ConsecutiveFailures>();
    let rows: Vec<(String, usize, &str)> = vec![
        (
            "`Breaker<ConsecutiveFailures, NoClock, 1>`".into(),
            size_of::<Consecutive<1>>(),
            "one transition kept",
        ),
        (
            "`Breaker<ConsecutiveFailures>` (H = 4, default)".into(),
            size_of::<Consecutive<4>>(),
            "the default",
        ),
        (
            "`Breaker<ConsecutiveFailures, NoClock, 16>`".into(),
            size_of::<Consecutive<16>>(),
            "",
        ),
        (
            "`Breaker<ConsecutiveFailures, &ManualClock>`".into(),
            size_of::<Breaker<ConsecutiveFailures, &ManualClock>>(),
            "a borrowed clock adds a pointer",
        ),
        (
            "— state machine and history bookkeeping".into(),
            state,
            "phase, generation, entry time, backoff, RNG, inline successes; history cursor",
        ),
        (
            "— `Config`".into(),
            size_of::<Config>(),
            "backoff, jitter, probes, lease, slow-call threshold",
        ),
        (
            "— `Counts`".into(),
            size_of::<Counts>(),
            "seven `u64` counters for `Metrics`",
        ),
        (
            "— `ConsecutiveFailures`".into(),
            size_of::<ConsecutiveFailures>(),
            "threshold and run",
        ),
        (
            "— history, per `Transition`".into(),
            history_entry,
            "plus two words of bookkeeping",
        ),
        (
            "`Breaker<CountWindow<100>>`".into(),
            size_of::<Breaker<CountWindow<100>>>(),
            "recloser's default policy",
        ),
        (
            "`Breaker<TimeWindow<10>, &ManualClock>`".into(),
            size_of::<Breaker<TimeWindow<10>, &ManualClock>>(),
            "",
        ),
        (
            "`SharedBreaker<ConsecutiveFailures>`".into(),
            size_of::<SharedBreaker<ConsecutiveFailures>>(),
            "a `Breaker` plus its lock-free snapshot and two tagged counters",
        ),
        (
            "`SharedBreaker<CountWindow<100>>`".into(),
            size_of::<SharedBreaker<CountWindow<100>>>(),
            "",
        ),
        (
            "`StdBreaker<ConsecutiveFailures>`".into(),
            size_of::<StdBreaker<ConsecutiveFailures>>(),
            "a handle to the shared state on the heap",
        ),
        (
            "— on the heap, built".into(),
            heap_built,
            "its `SharedBreaker` (a `Breaker`, the snapshot, a mutex) and name; \
             listeners, waiting and counter slots are made when first used; the \
             `metrics` feature adds 16 metric handles (761 B in all on x86-64)",
        ),
        (
            "— on the heap, a thread's first lock-free count".into(),
            heap_first_count,
            "128-byte slots for the four lowest thread indices (or up to the \
             counting thread's, rounded up to a power of two); a higher index \
             later adds a bucket of 1, 2, 4 … 32 slots",
        ),
        (
            format!(
                "`Registry` of 10,000 idle named breakers, per breaker ({} KiB in all)",
                registry_total / 1024
            ),
            registry_total / IDLE,
            "each breaker's heap, its name twice (key and label), its slot and \
             its share of the map",
        ),
        (
            "`Guard` of a `StdBreaker`".into(),
            size_of::<Guard<'static, ConsecutiveFailures, MonotonicClock, 4>>(),
            "a reference and a permit",
        ),
        ("`Phase`".into(), size_of::<Phase>(), "state with its data"),
        ("`Permit`".into(), size_of::<Permit>(), ""),
        (
            "`Admission`".into(),
            size_of::<Admission>(),
            "what `try_acquire` returns",
        ),
        (
            "`Report`".into(),
            size_of::<Report>(),
            "what `record` returns",
        ),
        ("`Metrics`".into(), size_of::<Metrics>(), ""),
    ];
    let mut out = String::from("| type | bytes | note |\n|---|---:|---|\n");
    for (name, bytes, note) in rows {
        out.push_str(&format!("| {name} | {bytes} | {note} |\n"));
    }
    out
}

/// The README's table of trip policies: parameters, rule and size.
pub fn policy_table() -> String {
    let rows: Vec<(&str, &str, &str, String)> = vec![
        (
            "`ConsecutiveFailures`",
            "`failure_threshold`",
            "`failure_threshold` failures in a row (a success restarts the run)",
            bytes::<ConsecutiveFailures>(),
        ),
        (
            "`CountWindow<N>`",
            "`N` calls; `Thresholds`",
            "over the last `N` calls, see the rule below",
            format!(
                "N + {} (N = 16: {}, 100: {}, 1024: {})",
                size_of::<CountWindow<16>>() - 16,
                size_of::<CountWindow<16>>(),
                size_of::<CountWindow<100>>(),
                size_of::<CountWindow<1024>>()
            ),
        ),
        (
            "`TimeWindow<B>`",
            "`B` buckets, `bucket_length`; `Thresholds`",
            "over the last `B × bucket_length`, see the rule below",
            format!(
                "{}·B + {} (B = 10: {}, 60: {}, 100: {})",
                size_of::<TimeWindow<2>>() - size_of::<TimeWindow<1>>(),
                2 * size_of::<TimeWindow<1>>() - size_of::<TimeWindow<2>>(),
                size_of::<TimeWindow<10>>(),
                size_of::<TimeWindow<60>>(),
                size_of::<TimeWindow<100>>()
            ),
        ),
        (
            "`ReadyToTrip<F>`",
            "`F: Fn(&RunCounts) -> bool`",
            "whatever `F` says, after every outcome (gobreaker's `ReadyToTrip`)",
            bytes::<ReadyToTrip<fn(&RunCounts) -> bool>>() + " (with a `fn` pointer)",
        ),
        (
            "`(A, B)`",
            "two policies",
            "either trips; both see every outcome",
            format!(
                "A + B (`(ConsecutiveFailures, CountWindow<100>)`: {})",
                size_of::<(ConsecutiveFailures, CountWindow<100>)>()
            ),
        ),
    ];
    let mut out = String::from("| policy | parameters | trips when | bytes |\n|---|---|---|---|\n");
    for (name, params, rule, size) in rows {
        out.push_str(&format!("| {name} | {params} | {rule} | {size} |\n"));
    }
    out
}

fn bytes<T>() -> String {
    size_of::<T>().to_string()
}

/// `page` with the generated section `name` replaced by `table`.
pub fn with_table(page: &str, name: &str, table: &str) -> Option<String> {
    let start_marker = format!("<!-- {name}:start -->\n");
    let end_marker = format!("<!-- {name}:end -->");
    let start = page.find(&start_marker)? + start_marker.len();
    let end = page[start..].find(&end_marker)? + start;
    Some(format!("{}{}{}", &page[..start], table, &page[end..]))
}

/// The generated tables: (the page under `docs/`, the marker, the table).
pub fn tables() -> [(&'static str, &'static str, String); 2] {
    [
        ("docs/sizes.md", "sizes", table()),
        ("docs/policies.md", "policies", policy_table()),
    ]
}

#[allow(dead_code)] // also compiled into the docs test, which has its own main
fn main() {
    let update = std::env::args().any(|a| a == "--update-docs");
    for (page, marker, table) in tables() {
        if update {
            let path = format!("{}/{page}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).expect("the page is readable");
            let updated = with_table(&text, marker, &table).expect("the page has its markers");
            std::fs::write(&path, updated).expect("the page is writable");
        }
        println!("{table}");
    }
}
