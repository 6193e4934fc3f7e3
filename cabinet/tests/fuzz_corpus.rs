//! The PDF signature fuzz corpus (fuzz/corpus/pdf, the seeds, the crash
//! reproducers in fuzz/artifacts/pdf) replayed through what the fuzz target
//! calls (`verify_pdf` with the server's default limits, the corpus's test
//! root as trust anchor, a fixed time), in the normal test run: no input may
//! panic or hang. See docs/fuzzing.md.

use std::path::Path;
use std::time::{Duration, Instant};

use cabinet::signature::{exit_code, format_report, verify_pdf, TrustStore, VerifyOptions};

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
fn pdf_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/trust/root.pem");
    let mut trust = TrustStore::empty();
    trust
        .add_pem_or_der(&std::fs::read(&root).expect("fuzz/trust/root.pem"))
        .expect("trust anchor");
    let opts = VerifyOptions {
        verification_time: Some(1_795_500_000),
        ..VerifyOptions::default()
    };
    let n = replay("pdf", Duration::from_secs(20), |data| {
        if let Ok(report) = verify_pdf(data, &trust, &opts) {
            let _ = format_report(&report);
            let _ = exit_code(&report);
        }
    });
    assert!(n > 0, "no PDF corpus");
}
