#![no_main]
//! See docs/fuzzing.md. The same entry point replays fuzz/corpus/peer_input in the
//! normal test run.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu::fuzzing::peer_input(data);
});
