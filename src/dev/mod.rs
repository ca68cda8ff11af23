//! Tools for developing and testing against real protocols without the real systems.

pub mod adcs_emulator;
