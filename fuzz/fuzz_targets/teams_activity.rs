//! Fuzzes Teams activities: the bearer token's header, then the activity.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cert_assistant::fuzz::teams_activity(data));
