//! A subset of the [Hurl](https://hurl.dev) file format: parser and runner,
//! independent of the transport (shared by the `api-test` and `e2e` stage plugins).
//!
//! See `README.md` for exactly what is supported and what is rejected.
//!
//! ```ignore
//! let file = valero_hurl::parse("crm.hurl", &text)?;          // file:line:col errors
//! let result = valero_hurl::run_file(&file, &options, &mut transport, &mut clock);
//! ```

pub mod ast;
pub mod files;
pub mod parse;
pub mod run;
#[cfg(feature = "stage")]
pub mod stage;
pub mod template;

pub use ast::HurlFile;
pub use parse::{ParseError, parse};
pub use run::{
    AssertResult, CaptureResult, Clock, EntryResult, EntryState, FileResult, Request, Response,
    RunOptions, Transport, run_file,
};
pub use template::Variables;

#[cfg(test)]
mod tests;
