//! Fuzzes the one-line `/cert …` command parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cert_assistant::fuzz::command_line(data));
