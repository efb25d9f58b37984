//! Builds the first-party plugins (the `plugins/` workspace, target
//! wasm32-wasip2) and embeds the production ones into the `valero` binary,
//! so a user needs one file and their digests are fixed at build time.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins embedded as `builtin:NAME` (crate name = NAME).
const BUILTINS: &[&str] = &[
    "repo-check",
    "http-probe",
    "deploy-local",
    "health",
    "db-check",
    "api-test",
    "e2e",
    "build-images",
    "deploy-compose",
    "deploy-kubernetes",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("runner/ lives in the workspace root");
    let plugins = root.join("plugins");
    let target_dir = root.join("target").join("plugins");
    println!("cargo:rerun-if-changed={}", plugins.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-env-changed=VALERO_PLUGINS_PREBUILT");
    real_parts_for_tests();

    // A prebuilt plugin directory skips the nested build (packaging, offline builds).
    let wasm_dir = match env::var_os("VALERO_PLUGINS_PREBUILT") {
        Some(dir) => PathBuf::from(dir),
        None => {
            build_plugins(&plugins, &target_dir);
            target_dir.join("wasm32-wasip2").join("release")
        }
    };

    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let mut code = String::from(
        "/// First-party plugins embedded at build time.\npub static EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for name in BUILTINS {
        let file = format!("{}.wasm", name.replace('-', "_"));
        let src = wasm_dir.join(&file);
        let dst = out.join(&file);
        std::fs::copy(&src, &dst)
            .unwrap_or_else(|e| panic!("plugin {} was not built: {e}", src.display()));
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            dst.display().to_string()
        )
        .expect("write to String");
    }
    code.push_str("];\n");
    std::fs::write(out.join("builtins.rs"), code).expect("write builtins.rs");
    // Test-only plugins (hostile testkit etc.) are found by tests through this.
    println!("cargo:rustc-env=VALERO_PLUGINS_DIR={}", wasm_dir.display());
}

/// Tests that need a real part — a Docker engine, a PostgreSQL server, a
/// Kubernetes API server — are
/// compiled `#[ignore]`d unless the variable that points them at it is set
/// (`#[cfg_attr(not(valero_test_docker), ignore = "…")]`), so a machine
/// without the part shows them as *ignored*, with the reason, never as passed.
/// `.ci/run` starts every part and sets every variable, so there they run.
const REAL_PARTS: &[(&str, &str)] = &[
    ("VALERO_TEST_DOCKER", "valero_test_docker"),
    ("VALERO_TEST_POSTGRES_URL", "valero_test_postgres"),
    ("VALERO_TEST_KUBECONFIG", "valero_test_kubernetes"),
];

fn real_parts_for_tests() {
    for (var, cfg) in REAL_PARTS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo:rerun-if-env-changed={var}");
        let set = env::var(var).is_ok_and(|v| !v.is_empty() && v != "0");
        if set {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}

/// Adds the wasm32-wasip2 target through rustup when it is missing, so a
/// fresh clone builds with one command.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|s| s.join("lib/rustlib/wasm32-wasip2").is_dir());
    if !installed {
        println!("cargo:warning=adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
        let ok = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            panic!(
                "the wasm32-wasip2 target is missing and rustup could not add it: run `rustup target add wasm32-wasip2`"
            );
        }
    }
}

fn build_plugins(plugins: &Path, target_dir: &Path) {
    ensure_wasm_target();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(plugins.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(target_dir);
    // The outer build's settings (clippy's wrapper, host RUSTFLAGS, jobserver,
    // profile overrides) must not leak into the guest build.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
            || key == "MAKEFLAGS"
            || key == "MFLAGS"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd
        .status()
        .expect("could not run cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the plugins failed (see above). If the target is missing: rustup target add wasm32-wasip2"
        );
    }
}
