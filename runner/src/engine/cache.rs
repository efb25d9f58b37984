//! Compile cache: serialized components on disk, keyed by the plugin digest
//! and the engine's settings.
//!
//! `Component::deserialize` runs native code from the bytes it is given, so
//! only bytes this program wrote may ever reach it. Every entry carries an
//! HMAC-SHA256 tag under a per-cache secret key (created 0600 on first use);
//! an entry whose tag does not verify is ignored and rewritten. Entries are
//! written atomically (temp file + rename) and verified in memory before
//! deserializing, so there is no window between check and use.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

use crate::pipeline::Digest;

const MAGIC: &[u8; 8] = b"VALEROC1";
const TAG_LEN: usize = 32;

#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
    /// Digest of the engine settings: part of every entry's key.
    engine_hash: [u8; 32],
}

/// What a cache lookup found.
pub enum Lookup {
    Hit(Vec<u8>),
    Miss,
    /// An entry existed but failed verification; it will be overwritten.
    Rejected(String),
}

impl CompileCache {
    /// Opens (creating if needed) the cache at `dir`.
    pub fn open(dir: &Path, engine: &wasmtime::Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let key = load_or_create_key(&dir.join("key"))?;
        let mut h = Sha256Hasher(Sha256::new());
        env!("CARGO_PKG_VERSION").hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            key,
            engine_hash: h.0.finalize().into(),
        })
    }

    /// The default location: `$VALERO_CACHE_DIR`, else `$XDG_CACHE_HOME/valero`,
    /// else `~/.cache/valero`, else `.valero/cache`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("VALERO_CACHE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("valero");
        }
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(".cache").join("valero");
        }
        PathBuf::from(".valero").join("cache")
    }

    pub fn entry_path(&self, digest: &Digest) -> PathBuf {
        let mut h = Sha256::new();
        h.update(self.engine_hash);
        h.update(digest.0);
        self.dir
            .join(format!("{}.cwasm", hex::encode(h.finalize())))
    }

    fn mac(&self, digest: &Digest, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(&self.engine_hash);
        mac.update(&digest.0);
        mac.update(body);
        mac
    }

    pub fn get(&self, digest: &Digest) -> Lookup {
        let path = self.entry_path(digest);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(_) => return Lookup::Miss,
        };
        if data.len() < MAGIC.len() + TAG_LEN || &data[..MAGIC.len()] != MAGIC {
            return Lookup::Rejected(format!("{}: not a valero cache entry", path.display()));
        }
        let (tag, body) = data[MAGIC.len()..].split_at(TAG_LEN);
        if self.mac(digest, body).verify_slice(tag).is_err() {
            return Lookup::Rejected(format!(
                "{}: integrity tag does not verify (modified or foreign entry)",
                path.display()
            ));
        }
        Lookup::Hit(body.to_vec())
    }

    pub fn put(&self, digest: &Digest, body: &[u8]) -> std::io::Result<()> {
        let path = self.entry_path(digest);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&self.mac(digest, body).finalize().into_bytes())?;
        tmp.write_all(body)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    let corrupt = match std::fs::read(path) {
        Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(key) => return Ok(key),
            Err(_) => true,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(&key)?;
    if corrupt {
        // A key of the wrong length can verify nothing: replace it. Entries
        // tagged under the old key then fail verification and are recompiled.
        tracing::warn!(
            "compile cache key {} is corrupt (not 32 bytes); replacing it, so every cached plugin is compiled again",
            path.display()
        );
        tmp.persist(path).map_err(|e| e.error)?;
        return Ok(key);
    }
    // Two runs racing to create the key: the first one wins, the other reads it.
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(key),
        Err(_) => {
            let bytes = std::fs::read(path)?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                std::io::Error::other(format!(
                    "cache key file {} is corrupt; delete it (or run with --no-cache)",
                    path.display()
                ))
            })
        }
    }
}

/// Feeds `Hash` implementations into SHA-256 (stable across runs, unlike
/// `DefaultHasher`'s contract).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampered_entries_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let cache = CompileCache::open(dir.path(), &engine).unwrap();
        let d = Digest::of(b"plugin");
        assert!(matches!(cache.get(&d), Lookup::Miss));
        cache.put(&d, b"compiled bytes").unwrap();
        assert!(matches!(cache.get(&d), Lookup::Hit(b) if b == b"compiled bytes"));
        let path = cache.entry_path(&d);
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 1;
        std::fs::write(&path, data).unwrap();
        assert!(matches!(cache.get(&d), Lookup::Rejected(_)));
    }

    #[test]
    fn a_corrupt_key_is_replaced_and_old_entries_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let d = Digest::of(b"plugin");
        CompileCache::open(dir.path(), &engine)
            .unwrap()
            .put(&d, b"compiled bytes")
            .unwrap();
        std::fs::write(dir.path().join("key"), b"short").unwrap();
        let cache = CompileCache::open(dir.path(), &engine).expect("a corrupt key is replaced");
        assert_eq!(std::fs::read(dir.path().join("key")).unwrap().len(), 32);
        assert!(matches!(cache.get(&d), Lookup::Rejected(_)));
    }
}
