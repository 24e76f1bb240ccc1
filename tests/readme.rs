//! The README's generated parts are current.

#[path = "../examples/sizes.rs"]
mod sizes;

#[test]
fn readme_generated_tables_are_current() {
    // In the same test, so nothing else allocates while the heap is measured.
    let (built, _) = sizes::std_breaker_heap();
    assert!(
        built <= 512,
        "a StdBreaker takes {built} B of heap before any thread counts on it"
    );
    let readme = include_str!("../README.md");
    let expected = sizes::updated_readme(readme).expect("README has the markers of every table");
    assert!(
        readme == expected,
        "README's generated tables are out of date: run `cargo run --example sizes -- --update-readme`"
    );
}
