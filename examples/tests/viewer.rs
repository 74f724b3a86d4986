//! The audit log viewer in a real browser: the demo on a random port, driven by
//! `examples/viewer-test/viewer.test.mjs` (playwright-core and Debian's `chromium`, both
//! installed by `.ci/run`). Screenshots of the main states are written to
//! `target/viewer-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test harness

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Demo;

/// Where a required tool is, or `None` after saying why (a failure under
/// `AUDIT_REQUIRE_SERVICES`).
fn require(what: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_none() {
        assert!(
            std::env::var_os("AUDIT_REQUIRE_SERVICES").is_none(),
            "{what} is required (AUDIT_REQUIRE_SERVICES) but missing"
        );
        eprintln!("skipping the browser test: {what} is missing");
    }
    found
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

#[test]
fn the_viewer_works_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("viewer-test");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| on_path("chromium"));
    let Some(chromium) = require("chromium", chromium) else {
        return;
    };
    let Some(node) = require("node", on_path("node")) else {
        return;
    };
    let installed = dir.join("node_modules/playwright-core").is_dir();
    let Some(_) = require(
        "playwright-core (npm ci --prefix examples/viewer-test)",
        installed.then(PathBuf::new),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let demo = Demo::start(&tmp.path().join("audit.jsonl"));
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/viewer-screenshots");
    let out = Command::new(node)
        .arg(dir.join("viewer.test.mjs"))
        .arg(format!("http://{}", demo.addr))
        .arg(&shots)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed (screenshots in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    assert!(stdout.contains("viewer: all checks passed"), "{stdout}");
    demo.stop();
}
