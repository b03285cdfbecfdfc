//! The fake Security Center: its API over real sockets, and the official Python SDK as its
//! client.

mod api;
mod handle;
mod sdk_compat;
