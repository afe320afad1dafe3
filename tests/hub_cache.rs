//! Hub datasets read through a local cache in hf-hub's layout (no hub is reachable here):
//! the card's `configs:` header picks the parquet files at revision `main`; without them the
//! `refs/convert/parquet` copy is used; `HF_HUB_OFFLINE=1` forbids downloads; `HF_HOME` moves
//! the cache.

mod common;

use std::path::Path;
use std::process::Command;

/// `HF_HOME/hub/datasets--rubric-test--tiny-gsm` with a ref and a snapshot per revision.
fn make_cache(home: &Path, with_main: bool, with_convert: bool) {
    let repo = home.join("hub/datasets--rubric-test--tiny-gsm");
    let fixtures = common::crate_root().join("fixtures/hub");
    if with_main {
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(
            repo.join("refs/main"),
            "1111111111111111111111111111111111111111",
        )
        .unwrap();
        common::copy_dir(
            &fixtures.join("main"),
            &repo.join("snapshots/1111111111111111111111111111111111111111"),
        );
    }
    if with_convert {
        std::fs::create_dir_all(repo.join("refs/refs/convert")).unwrap();
        std::fs::write(
            repo.join("refs/refs/convert/parquet"),
            "2222222222222222222222222222222222222222",
        )
        .unwrap();
        common::copy_dir(
            &fixtures.join("convert"),
            &repo.join("snapshots/2222222222222222222222222222222222222222"),
        );
    }
}

fn render(home: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "tasks",
        "render",
        "tiny_gsm_hub",
        "--include-path",
        "fixtures/tasks/hub",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(&args)
        .current_dir(common::crate_root())
        .env("HF_HOME", home)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("RUBRIC_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn card_configs_select_the_parquet_files() {
    let home = tempfile::tempdir().unwrap();
    make_cache(home.path(), true, false);
    let (code, out, err) = render(home.path(), &[]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("hub_render", out);
}

#[test]
fn converted_parquet_is_the_fallback() {
    let home = tempfile::tempdir().unwrap();
    make_cache(home.path(), false, true);
    let (code, out, err) = render(home.path(), &["--num-fewshot", "0", "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Question: Tom has 2 apples and buys 1 more."),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2);
}

#[test]
fn offline_without_the_files_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = render(home.path(), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("dataset `rubric-test/tiny-gsm` (config `main`), split"),
        "{err}"
    );
    assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
}
