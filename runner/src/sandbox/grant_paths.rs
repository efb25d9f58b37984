//! Granted directories are resolved to their real location when a stage
//! starts, and preopened there. A link on the way is followed only when it
//! stays inside the directory that holds it: an earlier stage with a write
//! grant can plant links (`rw/sub -> ../../../../etc`), and a grant through
//! one must not reach outside. (Inside a preopen, wasmtime-wasi already
//! refuses links that leave it.)

use std::io;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GrantPathError {
    #[error(
        "granted directory `{grant}` goes through the link {link} -> {target}, which leaves {holder}\n  help: links in a granted path may only point inside the directory that holds them; grant the real directory ({target}) if it is meant to be reachable"
    )]
    LinkEscapes {
        grant: String,
        link: String,
        target: String,
        holder: String,
    },
    #[error(
        "granted directory `{grant}` cannot be opened: {source}\n  help: paths are relative to pipeline.toml; one an earlier stage creates must exist when this stage starts"
    )]
    Unreadable { grant: String, source: io::Error },
}

/// The real location of the granted directory `grant` (absolute, normalised
/// by validation), refusing any link on the way that leaves its directory.
pub fn resolve(grant: &Path) -> Result<PathBuf, GrantPathError> {
    let unreadable = |source: io::Error| GrantPathError::Unreadable {
        grant: grant.display().to_string(),
        source,
    };
    let mut real = PathBuf::from("/");
    for component in grant.components() {
        let name = match component {
            Component::Normal(name) => name,
            Component::ParentDir => {
                real.pop();
                continue;
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
        };
        let next = real.join(name);
        let meta = std::fs::symlink_metadata(&next).map_err(unreadable)?;
        if !meta.file_type().is_symlink() {
            real = next;
            continue;
        }
        let target = next.canonicalize().map_err(unreadable)?;
        if !target.starts_with(&real) {
            return Err(GrantPathError::LinkEscapes {
                grant: grant.display().to_string(),
                link: next.display().to_string(),
                target: target.display().to_string(),
                holder: real.display().to_string(),
            });
        }
        real = target;
    }
    if !real.is_dir() {
        return Err(unreadable(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", real.display()),
        )));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("rw/releases/v1")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        (dir, root)
    }

    #[test]
    fn a_plain_directory_is_its_own_real_location() {
        let (_dir, root) = tree();
        assert_eq!(resolve(&root.join("rw")).unwrap(), root.join("rw"));
    }

    #[test]
    fn a_link_that_stays_inside_its_directory_is_followed() {
        let (_dir, root) = tree();
        symlink("releases/v1", root.join("rw/current")).unwrap();
        assert_eq!(
            resolve(&root.join("rw/current")).unwrap(),
            root.join("rw/releases/v1")
        );
    }

    #[test]
    fn a_granted_link_leaving_its_directory_is_refused() {
        let (_dir, root) = tree();
        symlink("../../../../../../../../etc", root.join("rw/sub")).unwrap();
        let err = resolve(&root.join("rw/sub")).unwrap_err().to_string();
        assert!(
            err.contains("rw/sub -> /etc") && err.contains("which leaves"),
            "{err}"
        );
    }

    #[test]
    fn a_grant_below_a_link_leaving_its_directory_is_refused() {
        let (_dir, root) = tree();
        symlink("../outside", root.join("rw/sub")).unwrap();
        std::fs::create_dir(root.join("outside/deeper")).unwrap();
        let err = resolve(&root.join("rw/sub/deeper")).unwrap_err();
        assert!(matches!(err, GrantPathError::LinkEscapes { .. }), "{err}");
    }

    #[test]
    fn an_absolute_link_is_judged_by_where_it_lands() {
        let (_dir, root) = tree();
        symlink(root.join("rw/releases"), root.join("rw/abs-in")).unwrap();
        symlink(root.join("outside"), root.join("rw/abs-out")).unwrap();
        assert_eq!(
            resolve(&root.join("rw/abs-in")).unwrap(),
            root.join("rw/releases")
        );
        assert!(resolve(&root.join("rw/abs-out")).is_err());
    }

    #[test]
    fn a_missing_directory_says_so() {
        let (_dir, root) = tree();
        let err = resolve(&root.join("rw/later")).unwrap_err();
        assert!(matches!(err, GrantPathError::Unreadable { .. }), "{err}");
    }
}
