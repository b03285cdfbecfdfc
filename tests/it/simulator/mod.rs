//! The fake Security Center: its API over real sockets, and the official Python SDK as its
//! client.

mod api;
mod detail;
mod handle;
mod rules;
mod sdk_compat;
