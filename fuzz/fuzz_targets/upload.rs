#![no_main]
//! See docs/fuzzing.md. The same entry point replays fuzz/corpus/upload in the
//! normal test run.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    signaling::fuzzing::upload(data);
});
