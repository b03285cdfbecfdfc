//! sasrelay — architecture map (kept true as the code grows).
pub mod credentials;
pub mod sas;
pub mod secret;
pub mod simulator;
