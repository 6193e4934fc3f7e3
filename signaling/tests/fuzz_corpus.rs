//! The fuzz corpora of the server's targets (a client's WebSocket text
//! frame, an upload's request body), replayed through the same entry points
//! the fuzz targets call, in the normal test run: no input may panic or
//! hang. See docs/fuzzing.md.

use std::path::Path;
use std::time::{Duration, Instant};

/// Every file of `fuzz/{corpus,seeds,artifacts}/<target>`, through `run`:
/// none may panic or take longer than `limit`. Returns how many ran.
fn replay(target: &str, limit: Duration, run: impl Fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "seeds", "artifacts"] {
        let dir = fuzz.join(kind).join(target);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let t0 = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data)));
        assert!(outcome.is_ok(), "{} panicked", path.display());
        let took = t0.elapsed();
        assert!(took < limit, "{} took {took:?}", path.display());
    }
    files.len()
}

#[test]
fn client_message_corpus() {
    let n = replay(
        "client_message",
        Duration::from_secs(5),
        signaling::fuzzing::client_message,
    );
    assert!(n > 0, "no client message corpus");
}

#[test]
fn upload_corpus() {
    let n = replay(
        "upload",
        Duration::from_secs(10),
        signaling::fuzzing::upload,
    );
    assert!(n > 0, "no upload corpus");
}
