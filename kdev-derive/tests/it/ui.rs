//! Compile errors that teach: each `tests/ui/fail/*.rs` must fail with exactly its `.stderr`,
//! each `tests/ui/pass/*.rs` must build. Regenerate with `TRYBUILD=overwrite` and review.

#[test]
fn compile_errors_teach_and_valid_resources_build() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
