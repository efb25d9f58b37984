//! Helpers for the tests that run against a real Docker engine. Those tests
//! are `#[ignore]`d unless `VALERO_TEST_DOCKER=1` is set at build time (see
//! `runner/build.rs`); `.ci/run` starts dockerd and sets it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A static no-op program for `FROM scratch` test images: exits 0; with
/// `false` exits 1; with `sleep` says so on stdout and waits for SIGTERM.
pub fn noop_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("containers-noop");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("noop.c");
        std::fs::write(
            &src,
            "#include <signal.h>\n#include <string.h>\n#include <unistd.h>\n\
             static void bye(int s) { (void)s; _exit(0); }\n\
             int main(int argc, char **argv) {\n\
               if (argc > 1 && strcmp(argv[1], \"sleep\") == 0) {\n\
                 static const char m[] = \"noop: up, waiting for SIGTERM\\n\";\n\
                 signal(SIGTERM, bye);\n\
                 if (write(1, m, sizeof m - 1) < 0) return 2;\n\
                 for (;;) pause();\n }\n\
               return argc > 1 && strcmp(argv[1], \"false\") == 0;\n}\n",
        )
        .unwrap();
        let bin = dir.join(format!("noop-{}", std::process::id()));
        let st = Command::new("gcc")
            .args(["-static", "-Os", "-s", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("gcc (needed to build the test image)");
        assert!(st.success(), "gcc -static failed");
        bin
    })
}

/// A project name of its own per test (and per test process).
pub fn project_name(test: &str) -> String {
    format!("vt{}-{test}", std::process::id())
}

/// Removes everything of a project at the end of a test, whatever happened.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let filter = format!("label=valero.project={p}");
            for (list, rm) in [
                (vec!["ps", "-aq"], vec!["rm", "-f"]),
                (vec!["network", "ls", "-q"], vec!["network", "rm"]),
                (vec!["volume", "ls", "-q"], vec!["volume", "rm", "-f"]),
                (vec!["image", "ls", "-q"], vec!["image", "rm", "-f"]),
            ] {
                let ids = docker(&[&list[..], &["--filter", &filter]].concat());
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    docker(&[&rm[..], &ids[..]].concat());
                }
            }
        }
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
