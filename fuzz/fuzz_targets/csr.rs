//! Fuzzes the CSR parser (PEM pasted or uploaded by a person).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cert_assistant::fuzz::csr(data));
