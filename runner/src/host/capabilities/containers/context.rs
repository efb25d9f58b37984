//! Build contexts are tarred on the host (never by the guest, never by the
//! engine reading host paths), from a granted directory only, honouring its
//! `.dockerignore`.
//!
//! `.dockerignore` support: one pattern per line; blank lines and lines
//! starting with `#` are skipped; a leading `/` and a trailing `/` are
//! ignored; `*` matches any run of characters within one path component, `?`
//! one character, `**` any number of components; a pattern excludes the
//! paths it matches and everything below them; `!pattern` re-includes, and
//! the last matching line wins. Not supported: character classes `[…]` and
//! escapes with `\` (such a line is matched literally). The Dockerfile and
//! `.dockerignore` themselves are always sent, as Docker does.
//!
//! Symbolic links are stored as links (never followed), so a link cannot pull
//! a file from outside the context into the image. Other special files
//! (sockets, devices, FIFOs) are left out.

use std::path::Path;

/// Upper bound of a build context sent to the engine.
pub const MAX_CONTEXT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// One `.dockerignore` line.
#[derive(Debug)]
struct Pattern {
    parts: Vec<String>,
    negated: bool,
}

#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (negated, l) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, l),
                };
                let parts: Vec<String> = l
                    .trim_matches('/')
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .map(str::to_string)
                    .collect();
                (!parts.is_empty()).then_some(Pattern { parts, negated })
            })
            .collect();
        Ignore { patterns }
    }

    /// Is the context-relative path `rel` (components separated by `/`) excluded?
    pub fn excluded(&self, rel: &str) -> bool {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // The pattern matches the path or one of its ancestors.
            let hit = (1..=comps.len()).any(|n| match_parts(&p.parts, &comps[..n]));
            if hit {
                excluded = !p.negated;
            }
        }
        excluded
    }

    /// Whether some `!` line could re-include something below an excluded directory.
    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.negated)
    }
}

fn match_parts(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((comp, path_rest)) => {
                glob(first.as_bytes(), comp.as_bytes()) && match_parts(rest, path_rest)
            }
            None => false,
        },
    }
}

/// `*` and `?` within one component.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The tar archive of `dir` as the engine's build context.
pub fn tar_context(dir: &Path, dockerfile: &str) -> Result<Vec<u8>, String> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(format!("reading .dockerignore: {e}")),
    };
    let always = [dockerfile.trim_start_matches("./"), ".dockerignore"];
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut total = 0u64;
    let mut stack = vec![String::new()];
    while let Some(rel_dir) = stack.pop() {
        let abs = dir.join(&rel_dir);
        let mut entries: Vec<_> = std::fs::read_dir(&abs)
            .map_err(|e| format!("reading {}: {e}", abs.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("reading {}: {e}", abs.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(format!(
                    "{}: file names in a build context must be UTF-8",
                    entry.path().display()
                ));
            };
            let rel = if rel_dir.is_empty() {
                name.to_string()
            } else {
                format!("{rel_dir}/{name}")
            };
            let meta = entry
                .metadata()
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            let excluded = ignore.excluded(&rel) && !always.contains(&rel.as_str());
            let ft = meta.file_type();
            if ft.is_dir() {
                if !excluded {
                    builder
                        .append_dir(&rel, entry.path())
                        .map_err(|e| format!("adding {rel}: {e}"))?;
                }
                if !excluded || ignore.has_exceptions() {
                    stack.push(rel);
                }
            } else if excluded {
                continue;
            } else if ft.is_file() || ft.is_symlink() {
                total += meta.len();
                if total > MAX_CONTEXT_BYTES {
                    return Err(format!(
                        "the build context is larger than {} MiB; exclude files with .dockerignore",
                        MAX_CONTEXT_BYTES >> 20
                    ));
                }
                builder
                    .append_path_with_name(entry.path(), &rel)
                    .map_err(|e| format!("adding {rel}: {e}"))?;
            }
        }
    }
    builder
        .into_inner()
        .map_err(|e| format!("finishing the build context: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns() {
        let ig = Ignore::parse(
            "# comment\n\ntarget\n*.log\n/secrets/\ndocs/**/*.md\n!docs/keep/README.md\nsub/?.tmp\n",
        );
        for (path, want) in [
            ("target", true),
            ("target/debug/x", true),
            ("a.log", true),
            ("nested/a.log", false),
            ("secrets/key", true),
            ("docs/a.md", true),
            ("docs/x/y/a.md", true),
            ("docs/keep/README.md", false),
            ("docs/a.txt", false),
            ("sub/a.tmp", true),
            ("sub/ab.tmp", false),
            ("src/main.rs", false),
        ] {
            assert_eq!(ig.excluded(path), want, "{path}");
        }
    }

    #[test]
    fn tarred_context_honours_dockerignore_and_keeps_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(d.join(".dockerignore"), "secret.txt\ntarget\nDockerfile\n").unwrap();
        std::fs::write(d.join("app"), "bin").unwrap();
        std::fs::write(d.join("secret.txt"), "s").unwrap();
        std::fs::create_dir_all(d.join("target/debug")).unwrap();
        std::fs::write(d.join("target/debug/big"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap();
        let bytes = tar_context(d, "Dockerfile").unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            if name == "passwd" {
                assert!(e.header().entry_type().is_symlink());
            }
            names.push(name);
        }
        names.sort();
        assert_eq!(names, [".dockerignore", "Dockerfile", "app", "passwd"]);
    }
}
