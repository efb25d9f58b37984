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
