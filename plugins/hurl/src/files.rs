//! Finding `.hurl` files: a path is a file, or a directory whose `*.hurl` files are taken (sorted).

use std::path::{Path, PathBuf};

/// Expands `paths` (files or directories) to `.hurl` files, in order, without duplicates.
pub fn collect(paths: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let path = Path::new(p);
        let meta = std::fs::metadata(path).map_err(|e| {
            format!("cannot read {p}: {e} (is it granted with `fs = {{ read = [...] }}`?)")
        })?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot list {p}: {e}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "hurl") && f.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!("no *.hurl files in {p}"));
            }
            for f in found {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        } else if !out.iter().any(|f| f == path) {
            out.push(path.to_path_buf());
        }
    }
    Ok(out)
}

/// A parsed file and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    /// The file name, e.g. `crm.hurl`.
    pub file_name: String,
    pub file: crate::HurlFile,
}

/// Collects, reads and parses every file; all problems are returned at once
/// (`path:line:col: …` for syntax errors).
pub fn load(paths: &[String]) -> Result<Vec<Loaded>, Vec<String>> {
    let found = collect(paths).map_err(|e| vec![e])?;
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for path in found {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("cannot read {shown}: {e}"));
                continue;
            }
        };
        match crate::parse(&shown, &text) {
            Ok(file) if file.entries.is_empty() => {
                errors.push(format!(
                    "{shown}:1:1: no entries: expected a request line `METHOD URL`"
                ));
            }
            Ok(file) => loaded.push(Loaded {
                file_name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| shown.clone()),
                path,
                file,
            }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}
