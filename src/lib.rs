//! sasrelay — architecture map (kept true as the code grows).
pub mod cli;
pub mod config;
pub mod credentials;
pub mod sas;
pub mod secret;
