//! Prints the `size_of` table of the README (generated, never typed by hand).
//!
//! `cargo run --example sizes` prints it; `cargo run --example sizes -- --update-readme`
//! rewrites the README's table in place. A test checks the README is current.

use core::mem::size_of;

use breakerbox::{
    Admission, Breaker, Config, ConsecutiveFailures, Counts, ManualClock, Metrics, Permit, Phase,
    Report, Transition,
};

/// The README's table, in Markdown, for the machine this runs on.
pub fn table() -> String {
    type Consecutive<const H: usize> = Breaker<ConsecutiveFailures, (), H>;
    let history_entry = size_of::<Transition>();
    let whole = size_of::<Consecutive<1>>() - history_entry;
    let state =
        whole - size_of::<Config>() - size_of::<Counts>() - size_of::<ConsecutiveFailures>();
    let rows: Vec<(String, usize, &str)> = vec![
        (
            "`Breaker<ConsecutiveFailures, (), 1>`".into(),
            size_of::<Consecutive<1>>(),
            "one transition kept",
        ),
        (
            "`Breaker<ConsecutiveFailures>` (H = 4, default)".into(),
            size_of::<Consecutive<4>>(),
            "the default",
        ),
        (
            "`Breaker<ConsecutiveFailures, (), 16>`".into(),
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
            "phase, generation, entry time, backoff, RNG; history cursor",
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

const START: &str = "<!-- sizes:start -->\n";
const END: &str = "<!-- sizes:end -->";

/// The README with its sizes table replaced by `table`.
pub fn with_table(readme: &str, table: &str) -> Option<String> {
    let start = readme.find(START)? + START.len();
    let end = readme[start..].find(END)? + start;
    Some(format!("{}{}{}", &readme[..start], table, &readme[end..]))
}

#[allow(dead_code)] // also compiled into the README test, which has its own main
fn main() {
    let table = table();
    if std::env::args().any(|a| a == "--update-readme") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md is readable");
        let updated = with_table(&readme, &table).expect("README.md has the sizes markers");
        std::fs::write(path, updated).expect("README.md is writable");
    }
    print!("{table}");
}
