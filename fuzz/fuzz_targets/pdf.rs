#![no_main]
//! See docs/fuzzing.md. Arbitrary bytes through the signature verification
//! an upload gets (`cabinet::signature::verify_pdf`, the server's default
//! limits), with the test PKI's root (fuzz/trust/root.pem, the root of the
//! pyHanko-made seeds) as trust anchor and a fixed verification time. The
//! same replays fuzz/corpus/pdf in the normal test run.

use std::sync::OnceLock;

use cabinet::signature::{verify_pdf, TrustStore, VerifyOptions};

fn trust() -> &'static TrustStore {
    static TRUST: OnceLock<TrustStore> = OnceLock::new();
    TRUST.get_or_init(|| {
        let mut t = TrustStore::empty();
        let _ = t.add_pem_or_der(include_bytes!("../trust/root.pem"));
        t
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let opts = VerifyOptions {
        verification_time: Some(1_795_500_000),
        ..VerifyOptions::default()
    };
    if let Ok(report) = verify_pdf(data, trust(), &opts) {
        let _ = cabinet::signature::format_report(&report);
        let _ = cabinet::signature::exit_code(&report);
    }
});
