//! Everything that knows Security Center: the client against the simulator, normalisation of
//! the shared samples, and the SDK's signature vectors.

mod client;
mod normalise;
mod quota;
mod signing_vectors;
