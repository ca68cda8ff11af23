//! Fuzzes Discord interactions: Ed25519 check, then the body as the handler reads it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cert_assistant::fuzz::discord_interaction(data));
