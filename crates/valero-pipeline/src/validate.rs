//! From TOML text to a validated [`Pipeline`], collecting every problem.
//!
//! Works on `toml::de::DeTable` (spanned values), so each problem is reported at
//! the key or value it is about. Values that fail a check are left out (or get a
//! default) and checking goes on; a [`Pipeline`] is returned only when nothing
//! failed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_spanned::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::LoadOptions;
use super::diagnostic::{Diagnostic, Diagnostics};
use super::model::*;
use super::values::{self, ValueError};

mod kubernetes;

type Span = Range<usize>;
type Key<'i> = Spanned<DeString<'i>>;
type Val<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["pipeline", "targets", "secrets", "stages"];
const PIPELINE_KEYS: &[&str] = &["name", "description", "default_target", "timeout"];
const TARGET_KEYS: &[&str] = &[
    "description",
    "settings",
    "services",
    "jobs",
    "databases",
    "kubernetes",
];
const DATABASE_KEYS: &[&str] = &["url"];
const SERVICE_KEYS: &[&str] = &["program", "args", "env", "cwd", "port", "ready", "needs"];
const JOB_KEYS: &[&str] = &["program", "args", "env", "cwd", "timeout"];
/// Default wall-time limit of a target job.
const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(1800);
const SECRET_KEYS: &[&str] = &["env", "file"];
const STAGE_KEYS: &[&str] = &[
    "plugin",
    "sha256",
    "needs",
    "when",
    "always",
    "continue_on_error",
    "timeout",
    "retries",
    "with",
    "grants",
    "limits",
];
const RETRIES_KEYS: &[&str] = &["attempts", "backoff"];
const GRANT_KEYS: &[&str] = &[
    "env",
    "secrets",
    "fs",
    "http",
    "tcp",
    "lookup",
    "addresses",
    "processes",
    "containers",
    "kubernetes",
    "databases",
];
const FS_KEYS: &[&str] = &["read", "write"];
const CONTAINER_GRANT_KEYS: &[&str] = &["project", "build_contexts", "bind_mounts"];
const CONTAINERS_HELP: &str = "e.g. containers = { project = \"neuroerp-dev\", build_contexts = [\"examples/neuroerp\"], bind_mounts = [] }";
const LIMIT_KEYS: &[&str] = &["memory", "output"];

const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
const SIZE_EXPECTED: &str = "a size (bytes as an integer, or a string like \"256MiB\")";
const DURATION_EXPECTED: &str = "a duration string like \"60s\"";

pub(crate) fn validate(
    source: &str,
    path: &Path,
    opts: &LoadOptions,
) -> Result<Pipeline, Diagnostics> {
    let root = match DeTable::parse(source) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim_end().to_string();
            return Err(Diagnostics(vec![Diagnostic::at(
                path, source, span, message, None,
            )]));
        }
    };
    let mut v = Validator {
        path,
        base_dir: base_dir(path),
        opts,
        errors: Vec::new(),
        clusters_written: BTreeSet::new(),
    };
    let pipeline = v.document(root.get_ref());
    if v.errors.is_empty() {
        Ok(pipeline)
    } else {
        let mut diags: Vec<Diagnostic> = v
            .errors
            .into_iter()
            .map(|e| Diagnostic::at(path, source, e.span, e.message, e.help))
            .collect();
        diags.sort_by_key(|d| (d.line, d.col));
        Err(Diagnostics(diags))
    }
}

/// The file's directory, absolute and lexically normalised.
fn base_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let abs = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    values::normalize(&abs)
}

struct Error {
    span: Span,
    message: String,
    help: Option<String>,
}

struct Validator<'a> {
    path: &'a Path,
    base_dir: PathBuf,
    opts: &'a LoadOptions,
    errors: Vec<Error>,
    /// Targets with a `kubernetes` table, valid or not (an invalid one is
    /// reported once, where it is written, not again at every grant).
    clusters_written: BTreeSet<String>,
}

/// Entries of a table in source order (the map itself is sorted by key).
fn in_order<'t, 'i>(t: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Val<'i>)> {
    let mut entries: Vec<_> = t.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    v.type_str()
}

impl<'a> Validator<'a> {
    fn error(&mut self, span: Span, message: impl Into<String>, help: Option<String>) {
        self.errors.push(Error {
            span,
            message: message.into(),
            help,
        });
    }

    fn value_error(&mut self, span: Span, e: ValueError) {
        self.error(span, e.message, e.help);
    }

    fn type_error(&mut self, v: &Val<'_>, expected: &str) {
        self.error(
            v.span(),
            format!("expected {expected}, found {}", type_name(v.get_ref())),
            None,
        );
    }

    fn check_keys(&mut self, t: &DeTable<'_>, allowed: &[&str], context: &str) {
        for (k, _) in in_order(t) {
            let key: &str = k.get_ref();
            if allowed.contains(&key) {
                continue;
            }
            let help = values::suggestion(key, allowed.iter().copied(), "allowed keys are");
            self.error(k.span(), format!("unknown key `{key}` {context}"), help);
        }
    }

    fn table<'t, 'i>(&mut self, v: &'t Val<'i>) -> Option<&'t DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_error(v, "a table");
                None
            }
        }
    }

    fn string<'t>(&mut self, v: &'t Val<'_>) -> Option<&'t str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s),
            _ => {
                self.type_error(v, "a string");
                None
            }
        }
    }

    fn non_empty_string<'t>(&mut self, v: &'t Val<'_>, what: &str) -> Option<&'t str> {
        let s = self.string(v)?;
        if s.trim().is_empty() {
            self.error(v.span(), format!("{what} must not be empty"), None);
            return None;
        }
        Some(s)
    }

    fn boolean(&mut self, v: &Val<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(v, "a boolean (`true` or `false`)");
                None
            }
        }
    }

    /// The string elements of an array with their spans; wrong elements are
    /// reported and left out.
    fn strings<'t>(&mut self, v: &'t Val<'_>) -> Option<Vec<(&'t str, Span)>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.type_error(v, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            if let Some(s) = self.string(item) {
                out.push((s, item.span()));
            }
        }
        Some(out)
    }

    fn duration(&mut self, v: &Val<'_>, allow_zero: bool) -> Option<Duration> {
        let DeValue::String(s) = v.get_ref() else {
            self.type_error(v, DURATION_EXPECTED);
            return None;
        };
        match values::parse_duration(s, allow_zero) {
            Ok(d) => Some(d),
            Err(e) => {
                self.value_error(v.span(), e);
                None
            }
        }
    }

    fn integer(&mut self, v: &Val<'_>) -> Option<i128> {
        let DeValue::Integer(i) = v.get_ref() else {
            self.type_error(v, "an integer");
            return None;
        };
        match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(v.span(), "integer out of range", None);
                None
            }
        }
    }

    fn size(&mut self, v: &Val<'_>) -> Option<u64> {
        let result = match v.get_ref() {
            DeValue::String(s) => values::parse_size(s),
            DeValue::Integer(_) => {
                let n = self.integer(v)?;
                match u64::try_from(n) {
                    Ok(n) if n > 0 => Ok(n),
                    _ => {
                        self.error(v.span(), "a size must be a positive number of bytes", None);
                        return None;
                    }
                }
            }
            _ => {
                self.type_error(v, SIZE_EXPECTED);
                return None;
            }
        };
        match result {
            Ok(n) => Some(n),
            Err(e) => {
                self.value_error(v.span(), e);
                None
            }
        }
    }

    /// Any TOML value as JSON (datetimes become strings).
    fn json(&mut self, v: &Val<'_>) -> serde_json::Value {
        use serde_json::Value as J;
        match v.get_ref() {
            DeValue::String(s) => J::String(s.to_string()),
            DeValue::Boolean(b) => J::Bool(*b),
            DeValue::Datetime(d) => J::String(d.to_string()),
            DeValue::Integer(_) => match self.integer(v) {
                Some(n) => {
                    if let Ok(n) = i64::try_from(n) {
                        J::from(n)
                    } else if let Ok(n) = u64::try_from(n) {
                        J::from(n)
                    } else {
                        self.error(v.span(), "integer out of range", None);
                        J::Null
                    }
                }
                None => J::Null,
            },
            DeValue::Float(f) => {
                let n = f
                    .as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64);
                match n {
                    Some(n) => J::Number(n),
                    None => {
                        self.error(
                            v.span(),
                            format!("float `{}` cannot be represented in JSON", f.as_str()),
                            None,
                        );
                        J::Null
                    }
                }
            }
            DeValue::Array(items) => J::Array(items.iter().map(|i| self.json(i)).collect()),
            DeValue::Table(t) => J::Object(
                in_order(t)
                    .into_iter()
                    .map(|(k, val)| (k.get_ref().to_string(), self.json(val)))
                    .collect(),
            ),
        }
    }

    // ---- the document ------------------------------------------------------

    fn document(&mut self, root: &DeTable<'_>) -> Pipeline {
        self.check_keys(root, TOP_KEYS, "at the top level");
        let lookup = |name: &str| root.get_key_value(name);

        let targets = match lookup("targets") {
            Some((_, v)) => self.targets(v),
            None => BTreeMap::new(),
        };
        if targets.is_empty() {
            let span = lookup("targets")
                .or_else(|| lookup("pipeline"))
                .map_or(0..0, |(k, _)| k.span());
            self.error(
                span,
                "no targets defined",
                Some("add at least one target, e.g. `[targets.local]`".into()),
            );
        }
        let secrets = match lookup("secrets") {
            Some((_, v)) => self.secrets(v),
            None => BTreeMap::new(),
        };

        let mut pipeline = Pipeline {
            name: String::new(),
            description: String::new(),
            path: self.path.to_path_buf(),
            base_dir: self.base_dir.clone(),
            default_target: String::new(),
            timeout: DEFAULT_PIPELINE_TIMEOUT,
            targets,
            secrets,
            stages: Vec::new(),
        };
        match lookup("pipeline") {
            Some((k, v)) => self.pipeline_table(k, v, &mut pipeline),
            None => self.error(
                0..0,
                "missing `[pipeline]` table",
                Some("add `[pipeline]` with `name` and `default_target`".into()),
            ),
        }
        if let Some((_, v)) = lookup("stages")
            && let Some(t) = self.table(v)
        {
            pipeline.stages = self.stages(t, &pipeline);
        }
        pipeline
    }

    fn pipeline_table(&mut self, key: &Key<'_>, v: &Val<'_>, p: &mut Pipeline) {
        let Some(t) = self.table(v) else { return };
        self.check_keys(t, PIPELINE_KEYS, "in `[pipeline]`");
        match t.get("name") {
            Some(v) => {
                if let Some(s) = self.non_empty_string(v, "`name`") {
                    p.name = s.to_string();
                }
            }
            None => self.error(key.span(), "missing `name` in `[pipeline]`", None),
        }
        if let Some(v) = t.get("description")
            && let Some(s) = self.string(v)
        {
            p.description = s.to_string();
        }
        if let Some(v) = t.get("timeout")
            && let Some(d) = self.duration(v, false)
        {
            p.timeout = d;
        }
        match t.get("default_target") {
            Some(v) => {
                if let Some(s) = self.string(v) {
                    if p.targets.contains_key(s) {
                        p.default_target = s.to_string();
                    } else if !p.targets.is_empty() {
                        let help = values::suggestion(
                            s,
                            p.targets.keys().map(String::as_str),
                            "defined targets are",
                        );
                        self.error(v.span(), format!("unknown target `{s}`"), help);
                    }
                }
            }
            None => self.error(
                key.span(),
                "missing `default_target` in `[pipeline]`",
                Some("name the target used when `--target` is not given".into()),
            ),
        }
    }

    fn targets(&mut self, v: &Val<'_>) -> BTreeMap<String, Target> {
        let mut out = BTreeMap::new();
        let Some(t) = self.table(v) else {
            return out;
        };
        for (name, val) in in_order(t) {
            let name: &str = name.get_ref();
            let Some(tt) = self.table(val) else { continue };
            self.check_keys(tt, TARGET_KEYS, &format!("in target `{name}`"));
            let description = tt
                .get("description")
                .and_then(|d| self.string(d))
                .unwrap_or_default()
                .to_string();
            let settings = match tt.get("settings") {
                Some(s) => match self.table(s) {
                    Some(_) => self.json(s),
                    None => serde_json::Value::Object(Default::default()),
                },
                None => serde_json::Value::Object(Default::default()),
            };
            let services = tt
                .get("services")
                .map(|v| self.processes(name, "services", v, true))
                .unwrap_or_default();
            let jobs = tt
                .get("jobs")
                .map(|v| self.processes(name, "jobs", v, false))
                .unwrap_or_default();
            let databases = tt
                .get("databases")
                .map(|v| self.databases(name, v))
                .unwrap_or_default();
            let kubernetes = tt.get("kubernetes").and_then(|v| self.cluster(name, v));
            out.insert(
                name.to_string(),
                Target {
                    name: name.to_string(),
                    description,
                    settings,
                    services,
                    jobs,
                    databases,
                    kubernetes,
                },
            );
        }
        out
    }

    /// `[targets.T.databases.NAME] url = …` (a string or `{ secret | host_env }`).
    fn databases(&mut self, target: &str, v: &Val<'_>) -> BTreeMap<String, DatabaseSpec> {
        let mut out = BTreeMap::new();
        let Some(t) = self.table(v) else {
            return out;
        };
        for (name, val) in in_order(t) {
            let name: &str = name.get_ref();
            let Some(dt) = self.table(val) else { continue };
            let context = format!("in [targets.{target}.databases.{name}]");
            self.check_keys(dt, DATABASE_KEYS, &context);
            let Some(url_val) = dt.get("url") else {
                self.error(
                    val.span(),
                    format!("missing `url` {context}"),
                    Some("e.g. url = { secret = \"fibu_db_url\" } — keep credentials out of the file".into()),
                );
                continue;
            };
            if let Some(url) = self.env_value("`url`", url_val) {
                if let EnvValue::Literal(text) = &url
                    && !(text.starts_with("postgres://")
                        || text.starts_with("postgresql://")
                        || text.starts_with("sqlite:"))
                {
                    self.error(
                        url_val.span(),
                        format!("unsupported database URL {context}"),
                        Some("use postgres://user@host:port/db or sqlite://path/to/file.db".into()),
                    );
                }
                out.insert(
                    name.to_string(),
                    DatabaseSpec {
                        name: name.to_string(),
                        url,
                    },
                );
            }
        }
        out
    }

    /// `[targets.T.services]` / `[targets.T.jobs]`.
    fn processes(
        &mut self,
        target: &str,
        kind: &str,
        v: &Val<'_>,
        service: bool,
    ) -> BTreeMap<String, ProcessSpec> {
        let mut out = BTreeMap::new();
        let Some(t) = self.table(v) else {
            return out;
        };
        let mut needs_spans = Vec::new();
        for (name, val) in in_order(t) {
            let name: &str = name.get_ref();
            let Some(pt) = self.table(val) else { continue };
            let context = format!("in [targets.{target}.{kind}.{name}]");
            self.check_keys(pt, if service { SERVICE_KEYS } else { JOB_KEYS }, &context);
            let Some(program) = (match pt.get("program") {
                Some(p) => self.non_empty_string(p, "program"),
                None => {
                    self.error(
                        val.span(),
                        format!("missing `program` {context}"),
                        Some("e.g. program = \"target/release/neuroerp\"".into()),
                    );
                    None
                }
            }) else {
                continue;
            };
            let args = pt
                .get("args")
                .and_then(|a| self.strings(a))
                .map(|v| v.into_iter().map(|(s, _)| s.to_string()).collect())
                .unwrap_or_default();
            let env = pt
                .get("env")
                .map(|e| self.env_values(e))
                .unwrap_or_default();
            let cwd = pt
                .get("cwd")
                .and_then(|c| self.string(c))
                .map(|c| values::resolve(&self.base_dir, c))
                .unwrap_or_else(|| self.base_dir.clone());
            let port = pt.get("port").and_then(|p| {
                let n = self.integer(p)?;
                match u16::try_from(n) {
                    Ok(port) if port > 0 => Some(port),
                    _ => {
                        self.error(
                            p.span(),
                            format!("port {n} is out of range"),
                            Some("use 1-65535".into()),
                        );
                        None
                    }
                }
            });
            let ready = pt
                .get("ready")
                .and_then(|r| self.string(r))
                .map(str::to_string);
            let needs = match pt.get("needs").and_then(|n| self.strings(n)) {
                Some(items) => {
                    for (need, span) in &items {
                        needs_spans.push((name.to_string(), need.to_string(), span.clone()));
                    }
                    items.into_iter().map(|(s, _)| s.to_string()).collect()
                }
                None => Vec::new(),
            };
            let timeout = pt
                .get("timeout")
                .and_then(|d| self.duration(d, false))
                .unwrap_or(DEFAULT_JOB_TIMEOUT);
            out.insert(
                name.to_string(),
                ProcessSpec {
                    name: name.to_string(),
                    program: program.to_string(),
                    args,
                    env,
                    cwd,
                    port,
                    ready,
                    needs,
                    timeout,
                },
            );
        }
        for (service, need, span) in needs_spans {
            if !out.contains_key(&need) {
                self.error(
                    span,
                    format!("unknown service `{need}` in `needs` of [targets.{target}.services.{service}]"),
                    values::suggestion(&need, out.keys().map(String::as_str), "declared services are"),
                );
            }
        }
        out
    }

    /// `env = { K = "v", S = { secret = "name" }, H = { host_env = "VAR", default = "d" } }`.
    fn env_values(&mut self, v: &Val<'_>) -> BTreeMap<String, EnvValue> {
        let mut out = BTreeMap::new();
        let Some(t) = self.table(v) else {
            return out;
        };
        for (key, val) in in_order(t) {
            let key: &str = key.get_ref();
            if let Some(value) = self.env_value(&format!("env `{key}`"), val) {
                out.insert(key.to_string(), value);
            }
        }
        out
    }

    /// One value resolved by the host at run time: a literal, `{ secret = "name" }`
    /// or `{ host_env = "VAR", default = "…" }`.
    fn env_value(&mut self, label: &str, val: &Val<'_>) -> Option<EnvValue> {
        match val.get_ref() {
            DeValue::String(s) => Some(EnvValue::Literal(s.to_string())),
            DeValue::Table(et) => {
                self.check_keys(
                    et,
                    &["secret", "host_env", "default"],
                    &format!("in {label}"),
                );
                match (et.get("secret"), et.get("host_env")) {
                    (Some(s), None) => self.string(s).map(|s| EnvValue::Secret(s.to_string())),
                    (None, Some(h)) => self.string(h).map(|var| EnvValue::HostEnv {
                        var: var.to_string(),
                        default: et
                            .get("default")
                            .and_then(|d| self.string(d))
                            .map(str::to_string),
                    }),
                    _ => {
                        self.error(
                            val.span(),
                            format!("{label} needs exactly one of `secret` or `host_env`"),
                            Some("e.g. { secret = \"db_url\" } or { host_env = \"DATABASE_URL\", default = \"sqlite://app.db\" }".into()),
                        );
                        None
                    }
                }
            }
            _ => {
                self.type_error(val, "a string or a table");
                None
            }
        }
    }

    fn secrets(&mut self, v: &Val<'_>) -> BTreeMap<String, SecretSource> {
        let mut out = BTreeMap::new();
        let Some(t) = self.table(v) else {
            return out;
        };
        for (key, val) in in_order(t) {
            let name: &str = key.get_ref();
            let Some(st) = self.table(val) else { continue };
            self.check_keys(st, SECRET_KEYS, &format!("in secret `{name}`"));
            let env = st.get_key_value("env");
            let file = st.get_key_value("file");
            let source = match (env, file) {
                (Some((_, e)), None) => self
                    .non_empty_string(e, "`env`")
                    .map(|s| SecretSource::Env(s.to_string())),
                (None, Some((_, f))) => self
                    .non_empty_string(f, "`file`")
                    .map(|s| SecretSource::File(values::resolve(&self.base_dir, s))),
                (Some((ek, _)), Some((fk, _))) => {
                    let later = if ek.span().start > fk.span().start {
                        ek
                    } else {
                        fk
                    };
                    self.error(
                        later.span(),
                        format!("secret `{name}` has both `env` and `file`"),
                        Some("keep exactly one of them".into()),
                    );
                    None
                }
                (None, None) => {
                    self.error(
                        key.span(),
                        format!("secret `{name}` needs a source"),
                        Some("set exactly one of `env = \"VAR\"` or `file = \"path\"`".into()),
                    );
                    None
                }
            };
            if let Some(source) = source {
                out.insert(name.to_string(), source);
            }
        }
        out
    }

    fn stages(&mut self, t: &DeTable<'_>, p: &Pipeline) -> Vec<Stage> {
        let entries = in_order(t);
        let names: Vec<&str> = entries
            .iter()
            .map(|(k, _)| -> &str { k.get_ref() })
            .collect();
        let mut stages = Vec::new();
        // needs with their spans, per stage index, for the cycle check.
        let mut edges: Vec<Vec<(usize, Span)>> = Vec::new();
        for (key, val) in &entries {
            let name: &str = key.get_ref();
            if !values::valid_stage_name(name) {
                self.error(
                    key.span(),
                    format!("invalid stage name `{name}`"),
                    Some(
                        "stage names use lowercase letters, digits, `-` and `_`, \
                         and start with a letter or digit"
                            .into(),
                    ),
                );
            }
            let mut my_edges = Vec::new();
            if let Some(st) = self.table(val) {
                stages.push(self.stage(key, st, p, &names, &mut my_edges));
            }
            edges.push(my_edges);
        }
        self.cycles(&names, &edges);
        stages
    }

    fn stage(
        &mut self,
        key: &Key<'_>,
        t: &DeTable<'_>,
        p: &Pipeline,
        names: &[&str],
        edges: &mut Vec<(usize, Span)>,
    ) -> Stage {
        let name: &str = key.get_ref();
        self.check_keys(t, STAGE_KEYS, &format!("in stage `{name}`"));
        let mut stage = Stage {
            name: name.to_string(),
            plugin: PluginRef::Builtin(String::new()),
            sha256: None,
            needs: Vec::new(),
            when: None,
            always: false,
            timeout: DEFAULT_STAGE_TIMEOUT,
            retries: Retries {
                attempts: 1,
                backoff: DEFAULT_BACKOFF,
            },
            continue_on_error: false,
            with: serde_json::Value::Object(Default::default()),
            grants: Grants::default(),
            limits: Limits::default(),
        };

        let sha = t.get("sha256");
        let pin = sha.and_then(|s| self.pin(s));
        stage.sha256 = pin.as_ref().map(|(d, _)| *d);
        match t.get("plugin") {
            Some(v) => self.plugin(name, v, sha.is_some(), pin, &mut stage),
            None => self.error(
                key.span(),
                format!("missing `plugin` in stage `{name}`"),
                Some("e.g. `plugin = \"builtin:health\"` or `plugin = \"plugins/x.wasm\"`".into()),
            ),
        }

        if let Some(v) = t.get("needs")
            && let Some(items) = self.strings(v)
        {
            for (need, span) in items {
                match names.iter().position(|n| *n == need) {
                    Some(i) => {
                        if !stage.needs.iter().any(|n| n == need) {
                            stage.needs.push(need.to_string());
                            edges.push((i, span));
                        }
                    }
                    None => {
                        let help = values::suggestion(
                            need,
                            names.iter().copied().filter(|n| *n != name),
                            "defined stages are",
                        );
                        self.error(
                            span,
                            format!("unknown stage `{need}` in `needs` of stage `{name}`"),
                            help,
                        );
                    }
                }
            }
        }

        if let Some(v) = t.get("when")
            && let Some(items) = self.strings(v)
        {
            let mut when = BTreeSet::new();
            for (target, span) in items {
                if p.targets.contains_key(target) {
                    when.insert(target.to_string());
                } else if !p.targets.is_empty() {
                    let help = values::suggestion(
                        target,
                        p.targets.keys().map(String::as_str),
                        "defined targets are",
                    );
                    self.error(
                        span,
                        format!("unknown target `{target}` in `when` of stage `{name}`"),
                        help,
                    );
                }
            }
            stage.when = Some(when);
        }

        if let Some(v) = t.get("always")
            && let Some(b) = self.boolean(v)
        {
            stage.always = b;
        }
        if let Some(v) = t.get("continue_on_error")
            && let Some(b) = self.boolean(v)
        {
            stage.continue_on_error = b;
        }
        if let Some(v) = t.get("timeout")
            && let Some(d) = self.duration(v, false)
        {
            stage.timeout = d;
        }
        if let Some(v) = t.get("retries")
            && let Some(rt) = self.table(v)
        {
            self.check_keys(rt, RETRIES_KEYS, &format!("in `retries` of stage `{name}`"));
            if let Some(a) = rt.get("attempts")
                && let Some(n) = self.integer(a)
            {
                match u32::try_from(n) {
                    Ok(n) if n >= 1 => stage.retries.attempts = n,
                    _ => self.error(
                        a.span(),
                        "`attempts` must be at least 1",
                        Some("`attempts` counts the first try: 1 means no retry".into()),
                    ),
                }
            }
            if let Some(b) = rt.get("backoff")
                && let Some(d) = self.duration(b, true)
            {
                stage.retries.backoff = d;
            }
        }
        if let Some(v) = t.get("with")
            && self.table(v).is_some()
        {
            stage.with = self.json(v);
        }
        stage.grants = match t.get("grants") {
            Some(v) => self.grants(name, v, p, stage.when.as_ref()),
            None => Grants {
                addresses: default_addresses(),
                ..Grants::default()
            },
        };
        if let Some(v) = t.get("limits")
            && let Some(lt) = self.table(v)
        {
            self.check_keys(lt, LIMIT_KEYS, &format!("in `limits` of stage `{name}`"));
            if let Some(m) = lt.get("memory")
                && let Some(n) = self.size(m)
            {
                stage.limits.memory = n;
            }
            if let Some(o) = lt.get("output")
                && let Some(n) = self.size(o)
            {
                stage.limits.output = n;
            }
        }
        stage
    }

    /// The `sha256` pin with the span of its value.
    fn pin(&mut self, v: &Val<'_>) -> Option<(Digest, Span)> {
        let text = self.string(v)?;
        match Digest::parse(text.trim()) {
            Some(d) => Some((d, v.span())),
            None => {
                self.error(
                    v.span(),
                    "invalid sha256 digest",
                    Some("expected 64 hex digits, optionally prefixed with `sha256:`".into()),
                );
                None
            }
        }
    }

    /// `sha_given`: a `sha256` key is present (`pin` is None when it was invalid).
    fn plugin(
        &mut self,
        stage: &str,
        v: &Val<'_>,
        sha_given: bool,
        pin: Option<(Digest, Span)>,
        out: &mut Stage,
    ) {
        let Some(spec) = self.string(v) else { return };

        if let Some(builtin) = spec.strip_prefix("builtin:") {
            out.plugin = PluginRef::Builtin(builtin.to_string());
            let Some(actual) = self.opts.builtin_plugins.get(builtin) else {
                let help = values::suggestion(
                    builtin,
                    self.opts.builtin_plugins.keys().map(String::as_str),
                    "builtin plugins are",
                )
                .map(|h| h.replace("did you mean `", "did you mean `builtin:"));
                self.error(
                    v.span(),
                    format!("unknown builtin plugin `{builtin}`"),
                    help,
                );
                return;
            };
            if let Some((pinned, span)) = pin
                && pinned != *actual
            {
                self.error(
                    span,
                    format!("sha256 does not match builtin plugin `{builtin}`"),
                    Some(format!(
                        "expected (pinned) {pinned}, builtin is {actual}; \
                         remove `sha256` to use the builtin as shipped"
                    )),
                );
            }
            return;
        }

        if !spec.ends_with(".wasm") {
            self.error(
                v.span(),
                format!("invalid plugin `{spec}` in stage `{stage}`"),
                Some("use `builtin:NAME` or a path to a `.wasm` component".into()),
            );
            return;
        }
        let abs = values::resolve(&self.base_dir, spec);
        out.plugin = PluginRef::Path(abs.clone());
        let actual = if self.opts.check_plugin_files {
            match std::fs::read(&abs) {
                Ok(bytes) => Some(Digest::of(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.error(
                        v.span(),
                        format!("plugin file not found: {}", abs.display()),
                        Some(format!(
                            "plugin paths are relative to {}",
                            self.base_dir.display()
                        )),
                    );
                    None
                }
                Err(e) => {
                    self.error(
                        v.span(),
                        format!("cannot read plugin file {}: {e}", abs.display()),
                        None,
                    );
                    None
                }
            }
        } else {
            None
        };
        match (pin, actual) {
            (None, _) if sha_given => {} // invalid pin, already reported
            (None, Some(actual)) => self.error(
                v.span(),
                format!("missing `sha256` pin for plugin `{spec}`"),
                Some(format!(
                    "pin the file as it is now: sha256 = \"{}\"",
                    actual.hex()
                )),
            ),
            (None, None) => self.error(
                v.span(),
                format!("missing `sha256` pin for plugin `{spec}`"),
                Some("add sha256 = \"<64 hex digits>\" (the output of `sha256sum`)".into()),
            ),
            (Some((pinned, span)), Some(actual)) if pinned != actual => self.error(
                span,
                format!("sha256 of plugin `{spec}` does not match the pin"),
                Some(format!(
                    "expected (pinned) {pinned}, actual {actual}; if the plugin was \
                     rebuilt on purpose, set sha256 = \"{}\"",
                    actual.hex()
                )),
            ),
            _ => {}
        }
    }

    fn grants(
        &mut self,
        stage: &str,
        v: &Val<'_>,
        p: &Pipeline,
        when: Option<&BTreeSet<String>>,
    ) -> Grants {
        let mut g = Grants {
            addresses: default_addresses(),
            ..Grants::default()
        };
        let Some(t) = self.table(v) else { return g };
        let ctx = format!("in `grants` of stage `{stage}`");
        self.check_keys(t, GRANT_KEYS, &ctx);

        if let Some(v) = t.get("env")
            && let Some(items) = self.strings(v)
        {
            for (var, span) in items {
                if var.is_empty() || var.contains(['=', '\0']) {
                    self.error(
                        span,
                        format!("invalid environment variable name `{var}`"),
                        None,
                    );
                } else if !g.env.iter().any(|e| e == var) {
                    g.env.push(var.to_string());
                }
            }
        }
        if let Some(v) = t.get("secrets")
            && let Some(items) = self.strings(v)
        {
            for (secret, span) in items {
                if p.secrets.contains_key(secret) {
                    if !g.secrets.iter().any(|s| s == secret) {
                        g.secrets.push(secret.to_string());
                    }
                } else {
                    let help = values::suggestion(
                        secret,
                        p.secrets.keys().map(String::as_str),
                        "declared secrets are",
                    )
                    .or_else(|| Some(format!("declare it first: `[secrets.{secret}]`")));
                    self.error(span, format!("unknown secret `{secret}`"), help);
                }
            }
        }
        if let Some(v) = t.get("fs")
            && let Some(fs) = self.table(v)
        {
            self.check_keys(fs, FS_KEYS, &format!("in `grants.fs` of stage `{stage}`"));
            if let Some(r) = fs.get("read") {
                g.fs_read = self.dirs(r);
            }
            if let Some(w) = fs.get("write") {
                g.fs_write = self.dirs(w);
            }
        }
        if let Some(v) = t.get("http")
            && let Some(items) = self.strings(v)
        {
            for (s, span) in items {
                match values::parse_http_grant(s) {
                    Ok(h) => g.http.push(h),
                    Err(e) => self.value_error(span, e),
                }
            }
        }
        if let Some(v) = t.get("tcp")
            && let Some(items) = self.strings(v)
        {
            for (s, span) in items {
                match values::parse_tcp_grant(s) {
                    Ok(h) => g.tcp.push(h),
                    Err(e) => self.value_error(span, e),
                }
            }
        }
        if let Some(v) = t.get("lookup")
            && let Some(items) = self.strings(v)
        {
            for (s, span) in items {
                match values::parse_lookup_grant(s) {
                    Ok(name) if !g.lookup.contains(&name) => g.lookup.push(name),
                    Ok(_) => {}
                    Err(e) => self.value_error(span, e),
                }
            }
        }
        if let Some(v) = t.get("addresses")
            && let Some(items) = self.strings(v)
        {
            g.addresses.clear();
            for (s, span) in items {
                match values::parse_net(s) {
                    Ok(n) => {
                        if !g.addresses.contains(&n) {
                            g.addresses.push(n);
                        }
                    }
                    Err(e) => self.value_error(span, e),
                }
            }
        }
        for cap in Capability::ALL {
            let Some(v) = t.get(cap.name()) else { continue };
            let granted = match (cap, v.get_ref()) {
                (Capability::Databases, DeValue::Array(_)) => {
                    g.databases = self.database_scope(stage, v, p);
                    true
                }
                (Capability::Containers, DeValue::Table(ct)) => {
                    g.containers = self.container_grant(stage, ct, v);
                    g.containers.is_some()
                }
                (Capability::Kubernetes, DeValue::Table(kt)) => {
                    g.kubernetes = self.kubernetes_grant(stage, v, kt, p, when);
                    g.kubernetes.is_some()
                }
                (Capability::Kubernetes, DeValue::Boolean(true)) => {
                    self.error(
                        v.span(),
                        format!("`kubernetes` of stage `{stage}` needs namespaces and kinds"),
                        Some(kubernetes::GRANT_HELP.into()),
                    );
                    false
                }
                (Capability::Containers, DeValue::Boolean(true)) => {
                    self.error(
                        v.span(),
                        format!("`containers` of stage `{stage}` needs a project"),
                        Some(CONTAINERS_HELP.into()),
                    );
                    false
                }
                _ => self.boolean(v) == Some(true),
            };
            if granted {
                g.capabilities.insert(cap);
            }
        }
        g
    }

    /// `containers = { project = "…", build_contexts = […], bind_mounts = […] }`.
    fn container_grant(
        &mut self,
        stage: &str,
        t: &DeTable<'_>,
        whole: &Val<'_>,
    ) -> Option<ContainerGrant> {
        self.check_keys(
            t,
            CONTAINER_GRANT_KEYS,
            &format!("in `grants.containers` of stage `{stage}`"),
        );
        let mut ok = true;
        let project = match t.get("project") {
            None => {
                self.error(
                    whole.span(),
                    format!("`grants.containers` of stage `{stage}` has no `project`"),
                    Some(CONTAINERS_HELP.into()),
                );
                ok = false;
                String::new()
            }
            Some(v) => match self.string(v) {
                Some(name) if valid_project(name) => name.to_string(),
                Some(name) => {
                    self.error(
                        v.span(),
                        format!("invalid container project name `{name}`"),
                        Some(
                            "use 1 to 40 characters: lower-case letters, digits, `-` and `_`, \
                             starting with a letter or digit"
                                .into(),
                        ),
                    );
                    ok = false;
                    String::new()
                }
                None => {
                    ok = false;
                    String::new()
                }
            },
        };
        let build_contexts = t
            .get("build_contexts")
            .map(|v| self.dirs(v))
            .unwrap_or_default();
        let bind_mounts = match t.get("bind_mounts") {
            None => Vec::new(),
            Some(v) => {
                let dirs = self.dirs(v);
                let items: Vec<&Val<'_>> = match v.get_ref() {
                    DeValue::Array(items) => items.iter().collect(),
                    _ => Vec::new(),
                };
                for item in items {
                    let (DeValue::String(s), span) = (item.get_ref(), item.span()) else {
                        continue;
                    };
                    if values::resolve(&self.base_dir, s) == Path::new("/") {
                        self.error(
                            span,
                            "`/` cannot be granted for bind mounts",
                            Some("grant the directories the containers need".into()),
                        );
                        ok = false;
                    }
                }
                dirs
            }
        };
        ok.then_some(ContainerGrant {
            project,
            build_contexts,
            bind_mounts,
        })
    }

    /// `databases = ["fibu", "crm"]`: names some target declares.
    fn database_scope(&mut self, stage: &str, v: &Val<'_>, p: &Pipeline) -> DatabaseScope {
        let declared: BTreeSet<&str> = p
            .targets
            .values()
            .flat_map(|t| t.databases.keys().map(String::as_str))
            .collect();
        let mut names = BTreeSet::new();
        for (name, span) in self.strings(v).unwrap_or_default() {
            if !declared.contains(name) {
                self.error(
                    span,
                    format!(
                        "stage `{stage}` is granted database `{name}`, which no target declares"
                    ),
                    values::suggestion(name, declared.iter().copied(), "declared databases are")
                        .or_else(|| {
                            Some("declare it as [targets.T.databases.NAME] url = …".into())
                        }),
                );
            }
            names.insert(name.to_string());
        }
        DatabaseScope::Only(names)
    }

    fn dirs(&mut self, v: &Val<'_>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Some(items) = self.strings(v) else {
            return out;
        };
        for (s, span) in items {
            if s.is_empty() {
                self.error(
                    span,
                    "empty path",
                    Some("use \".\" for the pipeline's directory".into()),
                );
                continue;
            }
            let abs = values::resolve(&self.base_dir, s);
            if self.opts.check_plugin_files {
                match std::fs::metadata(&abs) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        self.error(span, format!("not a directory: {}", abs.display()), None);
                        continue;
                    }
                    // Not there yet is fine: an earlier stage may create it (a
                    // build job's output); the stage that needs it fails if not.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        self.error(
                            span,
                            format!("cannot read {}: {e}", abs.display()),
                            Some(format!("paths are relative to {}", self.base_dir.display())),
                        );
                        continue;
                    }
                }
            }
            if !out.contains(&abs) {
                out.push(abs);
            }
        }
        out
    }

    /// One error per back edge of a depth-first walk in file order, at the
    /// `needs` entry that closes the cycle.
    fn cycles(&mut self, names: &[&str], edges: &[Vec<(usize, Span)>]) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnStack,
            Done,
        }
        let mut mark = vec![Mark::New; names.len()];
        let mut reported: HashSet<Vec<usize>> = HashSet::new();
        for start in 0..names.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // (node, index of the next edge to follow)
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::OnStack;
            while let Some(top) = stack.last_mut() {
                let (node, next) = *top;
                let Some((to, span)) = edges.get(node).and_then(|e| e.get(next)) else {
                    mark[node] = Mark::Done;
                    stack.pop();
                    continue;
                };
                top.1 += 1;
                match mark.get(*to).copied() {
                    Some(Mark::New) => {
                        mark[*to] = Mark::OnStack;
                        stack.push((*to, 0));
                    }
                    Some(Mark::OnStack) => {
                        let from = stack.iter().position(|(n, _)| n == to).unwrap_or(0);
                        let cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        // The same cycle is found once per back edge; report each once.
                        let mut canonical = cycle.clone();
                        canonical.sort_unstable();
                        if reported.insert(canonical) {
                            let mut path: Vec<&str> = cycle.iter().map(|&n| names[n]).collect();
                            path.push(names[*to]);
                            self.error(span.clone(), format!("cycle: {}", path.join(" -> ")), None);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Container project names end up in Docker names, labels and image
/// repositories (which must be lower case).
fn valid_project(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

fn default_addresses() -> Vec<ipnet::IpNet> {
    vec![
        ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert([127, 0, 0, 0].into(), 8)),
        ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
            std::net::Ipv6Addr::LOCALHOST,
            128,
        )),
    ]
}
