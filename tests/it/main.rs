//! The integration tests: one binary whose modules mirror `src/`, one room each.
//!
//! Shared helpers are modules of this crate too: [`support`] (the real binary as a child, a
//! webhook receiver, configs joining them to the simulator), [`sinkkit`] (building and driving a
//! sink from TOML), [`corpus`] (the injection corpus), [`peers`] (the Python peers: the
//! official SDK and an SMTP server, set up on first use) and [`rerun`] (one test of this binary
//! run again as a child process).
//!
//! Tests that spawn the real daemon use `env!("CARGO_BIN_EXE_sasrelay")`. Nothing here sets a
//! process-wide environment variable or working directory: the tests share one process. Soaks
//! are `#[ignore]`d with the reason `soak`; `.ci/run` runs them as a step of their own
//! (`cargo test --locked --test it -- --ignored`).

mod corpus;
mod peers;
mod rerun;
mod sinkkit;
mod support;

mod architecture;
mod cli;
mod config;
mod credentials;
mod daemon;
mod deploy;
mod ha;
mod ha_postgres;
mod pipeline;
mod render;
mod routing;
mod sas;
mod simulator;
mod sinks;
mod store;
