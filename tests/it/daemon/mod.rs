//! The daemon as a process: the admin API and the commands that use it, end to end runs
//! against the simulator, and the kill -9 loop.

mod admin;
mod answers;
mod crash;
mod e2e;
