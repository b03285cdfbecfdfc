//! The daemon as a process: the admin API and the commands that use it, the admin API's door
//! (cross-site requests, exposure without a token, connection floods), end to end runs against
//! the simulator (wrong answers, a large backlog), health and meta-events, the health and
//! metrics listener that Kubernetes probes, configuration reloads, and the kill -9 loop.

mod act;
mod admin;
mod answers;
mod backlog;
mod browser;
mod crash;
mod details;
mod door;
mod e2e;
mod failover;
mod handle;
mod health;
mod large;
mod memory;
mod operators;
mod pairs;
mod probes;
mod progress;
mod reload;
mod seccomp;
