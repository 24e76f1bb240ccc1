//! The generated parts of the docs are current.

#[path = "../examples/sizes.rs"]
mod sizes;

#[test]
fn generated_tables_in_the_docs_are_current() {
    // In the same test, so nothing else allocates while the heap is measured.
    let (built, _) = sizes::std_breaker_heap();
    // The metrics feature adds the breaker's 16 metric handles (docs/sizes.md).
    let limit = if cfg!(feature = "metrics") { 1024 } else { 512 };
    assert!(
        built <= limit,
        "a StdBreaker takes {built} B of heap before any thread counts on it"
    );
    if cfg!(feature = "metrics") {
        // The tables are those of the default features, which the README's
        // test command checks.
        return;
    }
    let pages = [
        ("docs/sizes.md", include_str!("../docs/sizes.md")),
        ("docs/policies.md", include_str!("../docs/policies.md")),
    ];
    for ((page, marker, table), (name, text)) in sizes::tables().into_iter().zip(pages) {
        assert_eq!(page, name);
        let expected = sizes::with_table(text, marker, &table).expect("the page has its markers");
        assert!(
            text == expected,
            "{page}'s generated tables are out of date: run `cargo run --example sizes -- --update-docs`"
        );
    }
}
