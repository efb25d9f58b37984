//! Valero: a deployment pipeline runner whose stages are sandboxed
//! WebAssembly components.
//!
//! Flow: [`pipeline`] (parse + validate, once) → [`plan`] (DAG for a target)
//! → [`run`] (load plugins through [`engine`], execute with [`scheduler`] in
//! [`sandbox`]es) → [`report`] / [`records`].

pub mod builtins;
pub mod cli;
mod describe;
pub use valero_report::effects;
pub mod engine;
pub mod exit;
pub mod host;
pub mod observer;
pub use valero_pipeline as pipeline;
pub mod plan;
pub mod records;
pub use valero_report as report;
pub mod resume;
pub mod run;
pub mod sandbox;
pub mod scheduler;
pub use valero_report::secrets;
pub mod terminal;
