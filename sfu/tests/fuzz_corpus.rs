//! The fuzz corpora of the media plane's targets (fuzz/corpus, the seeds and
//! the crash reproducers in fuzz/artifacts), replayed through the same entry
//! points the fuzz targets call, in the normal test run: no input may panic
//! or hang. See docs/fuzzing.md.

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
fn sdp_corpus() {
    let n = replay("sdp", Duration::from_secs(10), sfu::fuzzing::sdp);
    assert!(n > 0, "no SDP corpus");
}

#[test]
fn datagram_corpus() {
    let n = replay("datagram", Duration::from_secs(5), sfu::fuzzing::datagram);
    assert!(n > 0, "no datagram corpus");
}

#[test]
fn peer_input_corpus() {
    let n = replay(
        "peer_input",
        Duration::from_secs(10),
        sfu::fuzzing::peer_input,
    );
    assert!(n > 0, "no peer input corpus");
}

/// Our own peers' SDPs go through the SDP entry point; with
/// `GIAOBAN_FUZZ_SEED_DIR` set they are also written there as seeds.
#[test]
fn example_sdps_are_seeds() {
    let sdps = sfu::fuzzing::example_sdps();
    assert_eq!(sdps.len(), 2, "an offer and its answer");
    for s in &sdps {
        assert!(s.starts_with("v=0"), "{s}");
        sfu::fuzzing::sdp(s.as_bytes());
    }
    if let Ok(dir) = std::env::var("GIAOBAN_FUZZ_SEED_DIR") {
        std::fs::create_dir_all(&dir).expect("seed dir");
        for (i, s) in sdps.iter().enumerate() {
            std::fs::write(Path::new(&dir).join(format!("own_{i}.sdp")), s).expect("write seed");
        }
    }
}
