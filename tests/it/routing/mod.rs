//! Routing: the rules as an operator writes them, and routing end to end with the real binary.

mod e2e;
mod rules;
