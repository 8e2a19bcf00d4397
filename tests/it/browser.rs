//! The example page in a real headless Chromium (driven by `tests/peers/browser.mjs` with
//! playwright-core): sign in through the dev provider's page, see the sign-out warning read from
//! `/auth/session` and stay signed in, and sign out again, in cookie mode and in token mode. A
//! missing browser or package is a failure that says how to install it, never a skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::*;
use crate::peers::peers_dir;

/// Both scenarios together take a few seconds; this bounds a hung browser.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium is not installed at {}: run `apt-get install chromium` (tests/run.sh does it), \
         or set CHROMIUM to its path",
        path.display()
    );
    path
}

#[tokio::test]
async fn example_page_signs_in_and_out_in_a_real_browser_in_both_modes() {
    let chromium = chromium();
    let peers = peers_dir();
    assert!(
        peers.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/peers` (tests/run.sh does it)"
    );
    // An idle timeout under the page's five-minute warning, so the warning shows at once.
    let app = spawn(
        dev_provider()
            .server_extra("example_app = true\n")
            .session("idle_timeout = \"4m\"\nabsolute_lifetime = \"1d\"\n"),
    )
    .await;
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");

    let child = Command::new("node")
        .arg(peers.join("browser.mjs"))
        .current_dir(&peers)
        .env("BROKER_URL", &app.base)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT_DIR", &screenshots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): install Node.js 20+ to run the browser test")
        });
    let output = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "tests/peers/browser.mjs did not finish within {} s (screenshots, if any, in {})",
                BROWSER_TIMEOUT.as_secs(),
                screenshots.display()
            )
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    if !stderr.trim().is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        output.status.success(),
        "the example page failed in a real browser ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("PASS cookie mode") && stdout.contains("PASS token mode"),
        "the browser run did not report both modes as passed:\n{stdout}"
    );
}
