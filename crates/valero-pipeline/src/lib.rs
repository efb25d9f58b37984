//! pipeline.toml: loading, validation and the validated model.
//!
//! [`load`] / [`parse_str`] turn a file into a [`Pipeline`] or into
//! [`Diagnostics`] listing every problem found, each located at the key or
//! value it is about (rendered like rustc's errors).

mod diagnostic;
mod model;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::*;
/// Resolves a path from pipeline.toml against the pipeline directory.
pub use values::resolve as resolve_path;

/// What the loader may rely on besides the file itself.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// First-party plugins embedded in the binary: name (as in `builtin:NAME`) -> digest.
    pub builtin_plugins: BTreeMap<String, Digest>,
    /// Read every path plugin and check its sha256 pin; check that granted
    /// directories that exist are directories. Off: only the syntax of paths and pins is checked.
    pub check_plugin_files: bool,
}

/// Reads and validates `path`. A file that cannot be read gives one diagnostic
/// with `line == 0` (no location in the file).
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Pipeline, Diagnostics> {
    match std::fs::read_to_string(path) {
        Ok(source) => parse_str(&source, path, opts),
        Err(e) => Err(Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            len: 0,
            message: format!("cannot read {}: {e}", path.display()),
            help: None,
            source_line: String::new(),
        }])),
    }
}

/// Validates `source` as if read from `path` (used in messages; its directory
/// is the base for relative paths).
pub fn parse_str(source: &str, path: &Path, opts: &LoadOptions) -> Result<Pipeline, Diagnostics> {
    validate::validate(source, path, opts)
}
