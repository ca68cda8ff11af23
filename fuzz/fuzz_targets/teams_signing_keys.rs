//! Fuzzes the Bot Framework's JWKS document.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cert_assistant::fuzz::teams_signing_keys(data));
