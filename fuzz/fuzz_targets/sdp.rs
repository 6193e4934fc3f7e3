#![no_main]
//! See docs/fuzzing.md. The same entry point replays fuzz/corpus/sdp in the
//! normal test run.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu::fuzzing::sdp(data);
});
