//! Every Parquet file of a run opens in polars, pandas and pyarrow with the
//! row counts and columns its manifest lists (tests/python/check_parquet.py).
//! Needs python3 with polars, pandas and pyarrow; without them the test says so
//! and passes, unless STEERBENCH_REQUIRE_PYTHON=1 (CI sets it) makes it fail.

mod common;

use std::process::Command;

#[test]
fn python_readers_open_every_output() {
    let have = Command::new("python3")
        .args(["-c", "import polars, pandas, pyarrow"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        assert!(
            std::env::var("STEERBENCH_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "python3 with polars, pandas and pyarrow is required (STEERBENCH_REQUIRE_PYTHON=1)"
        );
        eprintln!("skipped: python3 with polars, pandas and pyarrow is not installed");
        return;
    }
    let ws = common::Workspace::new(common::SPEC);
    let r = ws.run(2, false).unwrap();
    let out = Command::new("python3")
        .arg("tests/python/check_parquet.py")
        .arg(&r.run_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("10 Parquet file(s) checked"), "{stdout}");
}
