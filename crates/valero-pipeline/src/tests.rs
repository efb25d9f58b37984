//! Fixture tests (tests/fixtures/{valid,invalid}) and end-to-end checks of
//! `parse_str`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// `<repo>/tests/fixtures`, found from this file's path (absolute when built
/// through a `#[path]` module, else relative to the workspace root).
fn fixtures() -> PathBuf {
    let this = Path::new(file!());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = if this.is_absolute() {
        this.to_path_buf()
    } else {
        manifest
            .ancestors()
            .map(|a| a.join(this))
            .find(|p| p.exists())
            .unwrap_or_else(|| this.to_path_buf())
    };
    // <repo>/crates/valero-pipeline/src/tests.rs -> <repo>
    let repo = file.ancestors().nth(4).unwrap_or(Path::new("."));
    repo.join("tests/fixtures")
}

fn opts() -> LoadOptions {
    LoadOptions {
        builtin_plugins: [
            ("repo-check".to_string(), Digest::of(b"repo-check")),
            ("http-probe".to_string(), Digest::of(b"http-probe")),
        ]
        .into_iter()
        .collect(),
        check_plugin_files: true,
    }
}

const DUMMY_SHA: &str = "8e7a239a86c73dc6f32835374585df1fadd19b76ea7ffc793b524f10532c502c";

fn load_invalid(name: &str) -> Diagnostics {
    let path = fixtures().join("invalid").join(name);
    match load(&path, &opts()) {
        Ok(p) => panic!("{name} should not load: {p:#?}"),
        Err(d) => d,
    }
}

/// (line, col, len, message) of every diagnostic.
fn positions(d: &Diagnostics) -> Vec<(usize, usize, usize, String)> {
    d.iter()
        .map(|d| (d.line, d.col, d.len, d.message.clone()))
        .collect()
}

fn expect(name: &str, want: &[(usize, usize, usize, &str)]) -> Diagnostics {
    let d = load_invalid(name);
    let want: Vec<_> = want
        .iter()
        .map(|&(l, c, n, m)| (l, c, n, m.to_string()))
        .collect();
    assert_eq!(positions(&d), want, "{name}:\n{d}");
    d
}

fn help(d: &Diagnostics, i: usize) -> &str {
    d.0.get(i).and_then(|d| d.help.as_deref()).unwrap_or("")
}

#[test]
fn unknown_key() {
    let d = expect(
        "unknown_key.toml",
        &[(9, 1, 6, "unknown key `timout` in stage `health`")],
    );
    assert_eq!(help(&d, 0), "did you mean `timeout`?");
    assert_eq!(d.0[0].source_line, "timout = \"60s\"");
}

#[test]
fn cycle() {
    expect(
        "cycle.toml",
        &[
            (13, 10, 3, "cycle: a -> c -> b -> a"),
            (21, 15, 3, "cycle: d -> d"),
        ],
    );
}

#[test]
fn missing_need() {
    let d = expect(
        "missing_need.toml",
        &[(
            12,
            20,
            8,
            "unknown stage `deplyo` in `needs` of stage `health`",
        )],
    );
    assert_eq!(help(&d, 0), "did you mean `deploy`?");
}

#[test]
fn wrong_digest() {
    let d = expect(
        "wrong_digest.toml",
        &[(
            9,
            10,
            66,
            "sha256 of plugin `../plugins/dummy.wasm` does not match the pin",
        )],
    );
    let zeros = "0".repeat(64);
    assert_eq!(
        help(&d, 0),
        format!(
            "expected (pinned) sha256:{zeros}, actual sha256:{DUMMY_SHA}; if the plugin \
             was rebuilt on purpose, set sha256 = \"{DUMMY_SHA}\""
        )
    );
}

#[test]
fn bad_duration() {
    let d = expect(
        "bad_duration.toml",
        &[(9, 11, 15, "invalid duration `sixty seconds`")],
    );
    assert_eq!(
        help(&d, 0),
        "use a number with a unit, e.g. \"30s\", \"5m\", \"1h30m\""
    );
}

#[test]
fn unknown_target() {
    let d = expect(
        "unknown_target.toml",
        &[(
            10,
            20,
            11,
            "unknown target `prodution` in `when` of stage `deploy`",
        )],
    );
    assert_eq!(help(&d, 0), "defined targets are: `local`, `staging`");
}

#[test]
fn missing_plugin() {
    let abs = fixtures().join("plugins/missing.wasm");
    let msg = format!("plugin file not found: {}", abs.display());
    expect("missing_plugin.toml", &[(8, 10, 25, &msg)]);
}

#[test]
fn duplicate_key() {
    expect("duplicate_key.toml", &[(10, 1, 7, "duplicate key")]);
}

#[test]
fn syntax_error() {
    expect(
        "syntax_error.toml",
        &[(2, 21, 1, "invalid basic string, expected `\"`")],
    );
}

#[test]
fn multiple_errors() {
    let not_a_dir = format!(
        "not a directory: {}",
        fixtures().join("plugins/dummy.wasm").display()
    );
    let d = expect(
        "multiple_errors.toml",
        &[
            (3, 18, 6, "unknown target `locl`"),
            (
                4,
                11,
                4,
                "expected a duration string like \"60s\", found integer",
            ),
            (11, 9, 5, "invalid stage name `Build`"),
            (12, 10, 19, "unknown builtin plugin `repo-chek`"),
            (13, 9, 8, "expected an array of strings, found string"),
            (
                16,
                10,
                23,
                "missing `sha256` pin for plugin `../plugins/dummy.wasm`",
            ),
            (17, 24, 1, "`attempts` must be at least 1"),
            (17, 37, 6, "invalid duration `soon`"),
            (21, 12, 6, "unknown secret `tokn`"),
            (
                22,
                9,
                16,
                "http grant `127.0.0.1:8080` needs a scheme (`http://` or `https://`)",
            ),
            (
                22,
                27,
                21,
                "http grant `https://[::1]:*/api` has a path: only scheme, host and port are allowed",
            ),
            (
                23,
                8,
                18,
                "invalid host `db.internal` in tcp grant `db.internal:5432`: \
                 expected an IP address, a CIDR range or `localhost`",
            ),
            (24, 14, 13, "invalid CIDR range `10.0.0.0/33`"),
            (25, 16, 23, &not_a_dir),
            (
                25,
                42,
                4,
                "unknown key `exec` in `grants.fs` of stage `deploy`",
            ),
            (
                26,
                1,
                7,
                "unknown key `network` in `grants` of stage `deploy`",
            ),
            (29, 10, 6, "invalid size `lots`"),
            (
                30,
                10,
                4,
                "expected a size (bytes as an integer, or a string like \"256MiB\"), found boolean",
            ),
        ],
    );
    assert_eq!(help(&d, 0), "did you mean `local`?");
    assert_eq!(help(&d, 3), "did you mean `builtin:repo-check`?");
    assert_eq!(
        help(&d, 5),
        format!("pin the file as it is now: sha256 = \"{DUMMY_SHA}\"")
    );
    assert_eq!(help(&d, 8), "did you mean `token`?");
    assert_eq!(help(&d, 14), "allowed keys are: `read`, `write`");
    assert!(help(&d, 15).starts_with("allowed keys are: `env`, `secrets`, `fs`,"));
    let summary = format!(
        "error: 18 problems found in {}",
        fixtures().join("invalid/multiple_errors.toml").display()
    );
    assert!(d.to_string().ends_with(&summary));
}

#[test]
fn kubernetes_grants_and_clusters_are_checked_where_they_are_written() {
    let text = r#"[pipeline]
name = "k"
default_target = "local"
[targets.local]
[targets.staging.kubernetes]
kubeconfig = { host_env = "KUBECONFIG" }
namespace = "Bad_NS"
[stages.deploy]
plugin = "builtin:repo-check"
grants = { kubernetes = { namespaces = ["neuroerp"], kinds = ["Deploymnet", "ClusterRole"] } }
"#;
    let d = parse_str(text, Path::new("pipeline.toml"), &opts()).unwrap_err();
    let found: Vec<(usize, usize, &str)> =
        d.0.iter()
            .map(|e| (e.line, e.col, e.message.as_str()))
            .collect();
    assert_eq!(
        found,
        [
            (7, 13, "invalid namespace name `Bad_NS`"),
            // At the grant; not again for `staging`, whose cluster is invalid.
            (
                10,
                25,
                "stage `deploy` is granted `kubernetes` and runs on target `local`, which declares no cluster"
            ),
            (10, 63, "kind `Deploymnet` cannot be granted"),
            (10, 77, "kind `ClusterRole` cannot be granted"),
        ]
    );
    assert_eq!(d.0[2].help.as_deref(), Some("did you mean `Deployment`?"));
}

#[test]
fn valid_full() {
    let dir = fixtures();
    let path = dir.join("valid/full.toml");
    let p = load(&path, &opts()).unwrap_or_else(|d| panic!("{d}"));
    let valid = dir.join("valid");
    assert_eq!(p.name, "full");
    assert_eq!(p.description, "every key once");
    assert_eq!(p.path, path);
    assert_eq!(p.base_dir, valid);
    assert_eq!(p.default_target, "local");
    assert_eq!(p.timeout, Duration::from_secs(7200));

    assert_eq!(p.targets.keys().collect::<Vec<_>>(), ["local", "staging"]);
    let local = &p.targets["local"];
    assert_eq!(local.name, "local");
    assert_eq!(local.description, "processes on this machine");
    assert_eq!(
        local.settings,
        serde_json::json!({"base_url": "http://127.0.0.1:8080", "replicas": 1})
    );
    assert_eq!(
        p.targets["staging"].settings,
        serde_json::json!({
            "namespace": "neuroerp-staging",
            "ratio": 0.5,
            "since": "2026-01-02T03:04:05Z",
            "nested": {"flags": [true, false]},
        })
    );

    assert_eq!(
        p.secrets["db_password"],
        SecretSource::Env("DB_PASSWORD".into())
    );
    assert_eq!(
        p.secrets["kubeconfig"],
        SecretSource::File(valid.join("data/kubeconfig"))
    );

    let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["checkout", "deploy", "health"]);
    let [checkout, deploy, health] = &p.stages[..] else {
        panic!("three stages expected");
    };

    // Defaults.
    assert_eq!(checkout.plugin, PluginRef::Builtin("repo-check".into()));
    assert_eq!(checkout.sha256, None);
    assert!(checkout.needs.is_empty());
    assert_eq!(checkout.when, None);
    assert!(!checkout.always && !checkout.continue_on_error);
    assert_eq!(checkout.timeout, DEFAULT_STAGE_TIMEOUT);
    assert_eq!(
        checkout.retries,
        Retries {
            attempts: 1,
            backoff: Duration::from_secs(1)
        }
    );
    assert_eq!(checkout.with, serde_json::json!({}));
    assert_eq!(
        checkout.grants,
        Grants {
            addresses: vec![
                "127.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}")),
                "::1/128".parse().unwrap_or_else(|e| panic!("{e}")),
            ],
            ..Grants::default()
        }
    );
    assert_eq!(checkout.limits, Limits::default());

    assert_eq!(deploy.plugin, PluginRef::Builtin("http-probe".into()));
    assert_eq!(deploy.sha256, Some(Digest::of(b"http-probe")));
    assert_eq!(deploy.needs, ["checkout"]);
    assert_eq!(deploy.when, Some(BTreeSet::from(["staging".to_string()])));
    assert!(deploy.continue_on_error && !deploy.always);
    assert_eq!(
        deploy.with,
        serde_json::json!({"manifests": "k8s/", "wait": true})
    );
    let g = &deploy.grants;
    assert_eq!(g.secrets, ["kubeconfig"]);
    assert_eq!(
        g.tcp,
        [
            TcpGrant {
                host: TcpHost::Net("10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))),
                port: PortPattern::Any
            },
            TcpGrant {
                host: TcpHost::Localhost,
                port: PortPattern::Exact(6443)
            },
            TcpGrant {
                host: TcpHost::Net("::1/128".parse().unwrap_or_else(|e| panic!("{e}"))),
                port: PortPattern::Exact(5432)
            },
        ]
    );
    assert_eq!(
        g.addresses,
        [
            "10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}")),
            "::1/128".parse().unwrap_or_else(|e| panic!("{e}")),
        ]
    );
    assert_eq!(g.capabilities, BTreeSet::from([Capability::Kubernetes]));
    let k = g.kubernetes.as_ref().unwrap();
    assert_eq!(
        k.namespaces,
        BTreeSet::from(["neuroerp-staging".to_string()])
    );
    assert_eq!(
        k.kinds,
        BTreeSet::from(["Deployment".to_string(), "Service".to_string()])
    );
    let cluster = p.targets["staging"].kubernetes.as_ref().unwrap();
    assert_eq!(
        cluster.kubeconfig,
        KubeconfigSource::HostEnv("KUBECONFIG".into())
    );
    assert_eq!(cluster.context.as_deref(), Some("staging"));
    assert_eq!(cluster.namespace, "neuroerp-staging");

    assert_eq!(
        health.plugin,
        PluginRef::Path(dir.join("plugins/dummy.wasm"))
    );
    assert_eq!(health.sha256, Digest::parse(DUMMY_SHA));
    assert_eq!(health.needs, ["deploy", "checkout"]);
    assert!(health.always);
    assert_eq!(health.timeout, Duration::from_secs(90));
    assert_eq!(
        health.retries,
        Retries {
            attempts: 3,
            backoff: Duration::from_secs(2)
        }
    );
    assert_eq!(
        health.with,
        serde_json::json!({"services": ["fibu-service", "crm-service"], "port": 8080})
    );
    let g = &health.grants;
    assert_eq!(g.env, ["BUILD_SHA"]);
    assert_eq!(g.secrets, ["db_password"]);
    assert_eq!(g.fs_read, [valid.join("data"), dir.join("plugins")]);
    assert_eq!(g.fs_write, [valid.join("data/reports")]);
    assert_eq!(
        g.http,
        [
            HttpGrant {
                scheme: "http".into(),
                host: "127.0.0.1".into(),
                port: PortPattern::Any
            },
            HttpGrant {
                scheme: "https".into(),
                host: "example.com".into(),
                port: PortPattern::Exact(443)
            },
        ]
    );
    assert!(g.tcp.is_empty());
    assert_eq!(
        g.capabilities,
        BTreeSet::from([Capability::Processes, Capability::Databases])
    );
    assert_eq!(
        health.limits,
        Limits {
            memory: 64 << 20,
            output: 65536
        }
    );
}

/// The renderer on a fixture, exactly (path as the caller gave it).
#[test]
fn renders_unknown_key_fixture() {
    let src = std::fs::read_to_string(fixtures().join("invalid/unknown_key.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let d = parse_str(&src, Path::new("pipeline.toml"), &opts())
        .err()
        .unwrap_or_else(|| panic!("should fail"));
    assert_eq!(
        d.to_string(),
        "error: unknown key `timout` in stage `health`
 --> pipeline.toml:9:1
  |
9 | timout = \"60s\"
  | ^^^^^^
  = help: did you mean `timeout`?

error: 1 problem found in pipeline.toml"
    );
}

fn parse(src: &str, check_files: bool) -> Result<Pipeline, Diagnostics> {
    let opts = LoadOptions {
        check_plugin_files: check_files,
        ..opts()
    };
    parse_str(src, Path::new("/nonexistent/pipeline.toml"), &opts)
}

const HEAD: &str = "[pipeline]\nname = \"t\"\ndefault_target = \"local\"\n[targets.local]\n";

#[test]
fn stage_order_is_file_order() {
    let src = format!(
        "{HEAD}[stages.zeta]\nplugin = \"builtin:repo-check\"\n\
         [stages.alpha]\nplugin = \"builtin:repo-check\"\nneeds = [\"zeta\"]\n\
         [stages.mid]\nplugin = \"builtin:repo-check\"\n\
         [stages.zeta.grants]\nprocesses = true\n"
    );
    let p = parse(&src, false).unwrap_or_else(|d| panic!("{d}"));
    let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
    assert!(
        p.stages[0]
            .grants
            .capabilities
            .contains(&Capability::Processes)
    );
    assert_eq!(p.timeout, DEFAULT_PIPELINE_TIMEOUT);
    assert_eq!(p.base_dir, Path::new("/nonexistent"));
}

#[test]
fn files_are_not_read_without_check() {
    let src = format!(
        "{HEAD}[stages.x]\nplugin = \"plugins/x.wasm\"\nsha256 = \"sha256:{DUMMY_SHA}\"\n\
         [stages.x.grants]\nfs = {{ read = [\"does/not/exist\"] }}\n"
    );
    let p = parse(&src, false).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        p.stages[0].plugin,
        PluginRef::Path("/nonexistent/plugins/x.wasm".into())
    );
    assert_eq!(
        p.stages[0].grants.fs_read,
        [PathBuf::from("/nonexistent/does/not/exist")]
    );
    let d = parse(&src, true)
        .err()
        .unwrap_or_else(|| panic!("should fail"));
    let lines: Vec<(usize, usize)> = d.iter().map(|d| (d.line, d.col)).collect();
    // The plugin file is missing; the granted directory may still appear
    // during the run (a build job's output), so it is not an error.
    assert_eq!(lines, [(6, 10)]);
}

#[test]
fn missing_things() {
    let d = parse("", false)
        .err()
        .unwrap_or_else(|| panic!("should fail"));
    let msgs: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs, ["no targets defined", "missing `[pipeline]` table"]);
    assert!(d.iter().all(|d| (d.line, d.col) == (1, 1)));

    let src = "[pipeline]\n[targets.local]\n[secrets.a]\n[secrets.b]\nenv = \"B\"\nfile = \"b\"\n\
               [stages.s]\nsha256 = \"xyz\"\n";
    let d = parse(src, false)
        .err()
        .unwrap_or_else(|| panic!("should fail"));
    let got: Vec<(usize, usize, &str)> = d
        .iter()
        .map(|d| (d.line, d.col, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, 2, "missing `name` in `[pipeline]`"),
            (1, 2, "missing `default_target` in `[pipeline]`"),
            (3, 10, "secret `a` needs a source"),
            (6, 1, "secret `b` has both `env` and `file`"),
            (7, 9, "missing `plugin` in stage `s`"),
            (8, 10, "invalid sha256 digest"),
        ]
    );
}

#[test]
fn builtin_pins_and_type_errors() {
    let src = format!(
        "{HEAD}[stages.a]\nplugin = \"builtin:repo-check\"\nsha256 = \"{DUMMY_SHA}\"\n\
         needs = 3\nalways = \"yes\"\nretries = {{ attempts = 2 }}\nwith = [1]\n\
         [stages.b]\nplugin = \"builtin:nope\"\nwhen = []\n[stages.c]\nplugin = \"x.so\"\n"
    );
    let d = parse(&src, false)
        .err()
        .unwrap_or_else(|| panic!("should fail"));
    let got: Vec<(usize, usize, &str)> = d
        .iter()
        .map(|d| (d.line, d.col, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (7, 10, "sha256 does not match builtin plugin `repo-check`"),
            (8, 9, "expected an array of strings, found integer"),
            (
                9,
                10,
                "expected a boolean (`true` or `false`), found string"
            ),
            (11, 8, "expected a table, found array"),
            (13, 10, "unknown builtin plugin `nope`"),
            (16, 10, "invalid plugin `x.so` in stage `c`"),
        ]
    );
    assert_eq!(
        d.0[4].help.as_deref(),
        Some("builtin plugins are: `http-probe`, `repo-check`")
    );
    // retries without backoff keep the default backoff; `when = []` is allowed.
    let ok = format!(
        "{HEAD}[stages.a]\nplugin = \"builtin:repo-check\"\nretries = {{ attempts = 2 }}\n\
         when = []\nwith = {{ n = -3, big = 18446744073709551615 }}\n"
    );
    let p = parse(&ok, false).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(p.stages[0].retries.attempts, 2);
    assert_eq!(p.stages[0].retries.backoff, Duration::from_secs(1));
    assert_eq!(p.stages[0].when, Some(BTreeSet::new()));
    assert_eq!(
        p.stages[0].with,
        serde_json::json!({"n": -3, "big": 18446744073709551615u64})
    );
}

#[test]
fn unreadable_file() {
    let d = load(Path::new("/nonexistent/pipeline.toml"), &opts())
        .err()
        .unwrap_or_else(|| panic!("should fail"));
    assert_eq!(d.0[0].line, 0);
    assert!(
        d.to_string()
            .starts_with("error: cannot read /nonexistent/pipeline.toml: ")
    );
}

#[test]
fn databases() {
    let d = expect(
        "databases.toml",
        &[
            (
                8,
                7,
                28,
                "unsupported database URL in [targets.local.databases.crm-service]",
            ),
            (
                9,
                1,
                36,
                "missing `url` in [targets.local.databases.bi-service]",
            ),
            (
                10,
                1,
                3,
                "unknown key `uri` in [targets.local.databases.bi-service]",
            ),
            (
                14,
                25,
                13,
                "stage `check` is granted database `fibu-servce`, which no target declares",
            ),
        ],
    );
    assert_eq!(help(&d, 2), "did you mean `url`?");
    assert_eq!(help(&d, 3), "did you mean `fibu-service`?");
}

#[test]
fn database_grants() {
    let text = "[pipeline]\nname = \"d\"\ndefault_target = \"local\"\n\
        [targets.local.databases.a]\nurl = { host_env = \"A_URL\", default = \"sqlite://{run_dir}/a.db\" }\n\
        [targets.local.databases.b]\nurl = \"postgres://u@127.0.0.1/b\"\n\
        [stages.all]\nplugin = \"builtin:http-probe\"\ngrants = { databases = true }\n\
        [stages.one]\nplugin = \"builtin:http-probe\"\ngrants = { databases = [\"b\"] }\n";
    let p = parse_str(text, Path::new("pipeline.toml"), &opts()).unwrap_or_else(|d| panic!("{d}"));
    let dbs = &p.targets["local"].databases;
    assert_eq!(
        dbs["a"].url,
        EnvValue::HostEnv {
            var: "A_URL".into(),
            default: Some("sqlite://{run_dir}/a.db".into())
        }
    );
    assert_eq!(p.stages[0].grants.databases, DatabaseScope::All);
    assert!(
        p.stages[0]
            .grants
            .capabilities
            .contains(&Capability::Databases)
    );
    assert_eq!(
        p.stages[1].grants.databases,
        DatabaseScope::Only(BTreeSet::from(["b".to_string()]))
    );
    assert!(!p.stages[1].grants.databases.allows("a"));
}

#[test]
fn lookup_grants_are_exact_host_names_reported_where_they_are_written() {
    let head = "[pipeline]\nname = \"l\"\ndefault_target = \"local\"\n[targets.local]\n\
        [stages.ok]\nplugin = \"builtin:http-probe\"\n";
    let good =
        format!("{head}grants = {{ lookup = [\"DB.Internal.\", \"db.internal\", \"a-1.b\"] }}\n");
    let p = parse_str(&good, Path::new("pipeline.toml"), &opts()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(p.stages[0].grants.lookup, ["db.internal", "a-1.b"]);

    let bad = format!(
        "{head}grants = {{ lookup = [\"*.example.test\", \"127.0.0.1\", \"under_score.test\", \"-x.test\"] }}\n"
    );
    let d = parse_str(&bad, Path::new("pipeline.toml"), &opts())
        .err()
        .unwrap_or_else(|| panic!("wildcards, literals and invalid names must be refused"));
    let line = bad.lines().count();
    let last = bad.lines().last().unwrap_or_default();
    let col = |needle: &str| last.find(needle).map(|i| i + 1).unwrap_or(0);
    let got: Vec<(usize, usize)> = d.iter().map(|d| (d.line, d.col)).collect();
    assert_eq!(
        got,
        [
            (line, col("\"*.example")),
            (line, col("\"127.0")),
            (line, col("\"under")),
            (line, col("\"-x")),
        ],
        "{d}"
    );
    let text = d.to_string();
    assert!(text.contains("wildcards are not allowed"), "{text}");
    assert!(text.contains("needs no lookup"), "{text}");
    assert!(
        text.contains("`under_score.test` is not a valid host name"),
        "{text}"
    );
}
