//! Stage plugin `repo-check`: verifies that required files exist in a repository.
//!
//! ```toml
//! with = { root = "/abs/path/to/repo", require = ["README.md", "pipeline.toml", "wit/stage.wit"] }
//! [stages.repo.grants]
//! fs = { read = ["/abs/path/to/repo"] }
//! ```
//!
//! The host preopens the granted directory at the same path inside the guest.
//! One check per required path: it must be a regular, readable file; evidence
//! records its size and sha256. Outputs: `{"files": {"README.md": "sha256:…"}}`.

use std::path::{Component, Path};
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use valero_sdk::{Check, Plugin, Report, Verdict, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Repository root, as granted (absolute host path).
    #[serde(default = "default_root")]
    root: String,
    /// Paths relative to `root` that must be regular files.
    require: Vec<String>,
}

fn default_root() -> String {
    ".".to_string()
}

struct RepoCheck;

impl Plugin for RepoCheck {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(config) => config,
            Err(e) => return Report::fail(e),
        };
        let root = Path::new(&config.root);
        let mut files = Map::new();
        let mut checks = Vec::new();
        let total = config.require.len() as u64;
        for (i, rel) in config.require.iter().enumerate() {
            log::progress(i as u64, total, rel);
            let (check, digest) = check_file(root, rel);
            if let Some(digest) = digest {
                files.insert(rel.clone(), Value::String(digest));
            }
            checks.push(check);
        }
        log::progress(total, total, "done");

        let found = checks
            .iter()
            .filter(|c| c.verdict() == Verdict::Pass)
            .count();
        let summary = format!("{found}/{total} required files present in {}", config.root);
        Report::from_checks(summary, checks).outputs(json!({ "files": files }))
    }
}

/// Checks one required file; returns the check and, if readable, `sha256:<hex>`.
fn check_file(root: &Path, rel: &str) -> (Check, Option<String>) {
    let start = Instant::now();
    let name = format!("file {rel}");
    let rel_path = Path::new(rel);
    if rel.is_empty()
        || rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        let check = Check::fail(name).message(format!(
            "{rel:?} must be a relative path inside {} without `..`",
            root.display()
        ));
        return (check, None);
    }
    let path = root.join(rel_path);
    let outcome = match std::fs::metadata(&path) {
        Err(e) => Err(format!("missing {rel} under {}: {e}", root.display())),
        Ok(meta) if !meta.is_file() => Err(format!(
            "{rel} under {} is not a regular file",
            root.display()
        )),
        Ok(_) => std::fs::read(&path)
            .map_err(|e| format!("cannot read {rel} under {}: {e}", root.display())),
    };
    let check = match outcome {
        Ok(bytes) => {
            let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
            let check = Check::pass(name)
                .message(format!("{rel} present ({} bytes)", bytes.len()))
                .evidence("path", path.display())
                .evidence("size", bytes.len())
                .evidence("sha256", &digest)
                .duration(start.elapsed());
            return (check, Some(digest));
        }
        Err(message) => Check::fail(name)
            .message(message)
            .evidence("path", path.display()),
    };
    (check.duration(start.elapsed()), None)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

valero_sdk::export_plugin!(RepoCheck);
