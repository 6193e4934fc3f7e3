#![no_main]
//! See docs/fuzzing.md. The same entry point replays fuzz/corpus/client_message in the
//! normal test run.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    signaling::fuzzing::client_message(data);
});
