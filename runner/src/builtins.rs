//! First-party plugins embedded in the binary (`plugin = "builtin:NAME"`).
//! Their digests are fixed at build time, so pipelines need no pin for them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::pipeline::Digest;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtins.rs"));
}

/// Name → (wasm bytes, digest).
pub fn all() -> &'static BTreeMap<&'static str, (&'static [u8], Digest)> {
    static ALL: OnceLock<BTreeMap<&'static str, (&'static [u8], Digest)>> = OnceLock::new();
    ALL.get_or_init(|| {
        embedded::EMBEDDED
            .iter()
            .map(|(name, bytes)| (*name, (*bytes, Digest::of(bytes))))
            .collect()
    })
}

pub fn get(name: &str) -> Option<&'static [u8]> {
    all().get(name).map(|(b, _)| *b)
}

pub fn digests() -> BTreeMap<String, Digest> {
    all()
        .iter()
        .map(|(n, (_, d))| (n.to_string(), *d))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The plugins of the `plugins/` workspace that build a component
    /// (`cdylib`) and are not test plugins (`testing/`).
    fn first_party_components() -> Vec<String> {
        let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let workspace = std::fs::read_to_string(plugins.join("Cargo.toml")).unwrap();
        let table: toml::Table = workspace.parse().unwrap();
        let members = table["workspace"]["members"].as_array().unwrap();
        let mut out = Vec::new();
        for m in members {
            let m = m.as_str().unwrap();
            if m.starts_with("testing/") {
                continue;
            }
            let manifest: toml::Table = std::fs::read_to_string(plugins.join(m).join("Cargo.toml"))
                .unwrap()
                .parse()
                .unwrap();
            let component = manifest
                .get("lib")
                .and_then(|l| l.get("crate-type"))
                .and_then(|t| t.as_array())
                .is_some_and(|t| t.iter().any(|k| k.as_str() == Some("cdylib")));
            if component {
                out.push(manifest["package"]["name"].as_str().unwrap().to_string());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_first_party_plugin_is_embedded_and_nothing_else() {
        let embedded: Vec<String> = super::all().keys().map(|k| k.to_string()).collect();
        assert_eq!(
            embedded,
            first_party_components(),
            "runner/build.rs BUILTINS and the plugins/ workspace differ: a first-party \
             plugin (not under testing/) must be embedded as builtin:NAME"
        );
    }
}
