//! The store against real directories, and its kill -9 loop.

mod crash;
mod disk;
