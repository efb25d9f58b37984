//! VALERO-NeuroERP demo fleet: seven small, real microservices sharing one core.
//!
//! `neuroerp <service>` runs one of them; see `README.md` for the endpoints.

pub mod cli;
pub mod core;
pub mod db;
pub mod metrics;
pub mod services;
pub mod token;
pub mod util;

pub use crate::core::Service;
