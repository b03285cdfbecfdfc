//! The Security Center (sas, 2018-12-03) side: signing, parameters, transport, response models.

pub mod api;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod handle;
pub mod models;
pub mod normalise;
pub mod pairs;
pub mod params;
pub mod quota;
pub mod retry;
pub mod sign;
pub mod source;
