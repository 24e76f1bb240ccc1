//! The README's generated parts are current.

#[path = "../examples/sizes.rs"]
mod sizes;

#[test]
fn readme_sizes_table_is_current() {
    let readme = include_str!("../README.md");
    let expected =
        sizes::with_table(readme, &sizes::table()).expect("README has the sizes markers");
    assert!(
        readme == expected,
        "README's size table is out of date: run `cargo run --example sizes -- --update-readme`"
    );
}
