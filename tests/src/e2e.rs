//! Shared pieces of the tests that drive real browsers (Chromium, Firefox
//! ESR) through the Node scripts in `tests/e2e`: where the scripts are, the
//! browsers, the pinned Node packages, and reading a script's output.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use tokio::process::Command;

/// The folder of the Node scripts (`tests/e2e`).
pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

/// The Chromium to drive: `CHROMIUM_PATH`, else `/usr/bin/chromium`.
pub fn chromium() -> Result<String> {
    system_browser("Chromium", "CHROMIUM_PATH", "/usr/bin/chromium", "chromium")
}

/// The Firefox ESR to drive: `FIREFOX_PATH`, else `/usr/bin/firefox-esr`.
pub fn firefox() -> Result<String> {
    system_browser(
        "Firefox ESR",
        "FIREFOX_PATH",
        "/usr/bin/firefox-esr",
        "firefox-esr",
    )
}

/// The browser at `$var`, else at `default`; an error naming the Debian
/// `package` where it is not there.
fn system_browser(name: &str, var: &str, default: &str, package: &str) -> Result<String> {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_string());
    ensure!(
        Path::new(&path).exists(),
        "{name} not found at {path} (apt-get install {package}, or set {var})"
    );
    Ok(path)
}

/// Installs the pinned playwright-core and puppeteer-core with `npm ci`
/// unless they are there.
pub async fn ensure_node_modules(dir: &Path) -> Result<()> {
    if ["playwright-core", "puppeteer-core"].iter().all(|p| {
        dir.join("node_modules")
            .join(p)
            .join("package.json")
            .is_file()
    }) {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--prefer-offline", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .await
        .context("running `npm ci` in tests/e2e (is npm installed?)")?;
    ensure!(
        out.status.success(),
        "`npm ci` failed in {} (it needs the npm registry: run `npm ci --prefix tests/e2e` \
         before entering a network namespace):\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The JSON summary a script prints as its last JSON line on stdout.
pub fn parse_summary(stdout: &str) -> Option<Value> {
    stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a finished script left behind.
pub struct ScriptRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The last JSON line of stdout, if any.
    pub summary: Option<Value>,
}

/// Runs `node SCRIPT ARGS…` in `tests/e2e` with extra environment variables,
/// waits at most `limit` (the process is killed past it) and collects its
/// output.
pub async fn run_script(
    script: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, String)],
    limit: std::time::Duration,
) -> Result<ScriptRun> {
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .args(args)
        .current_dir(e2e_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .context("starting node (is Node.js installed?)")?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("`node {script}` did not finish in {limit:?}"))??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = parse_summary(&stdout);
    Ok(ScriptRun {
        status: out.status,
        stdout,
        stderr,
        summary,
    })
}
