//! Objects to apply: identity, namespace defaulting, apply order, and
//! manifests read from YAML. No host calls, so it is unit-tested natively.

use std::fmt;

use serde_json::{Map, Number, Value};
use yaml_rust2::Event;
use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Kinds without a namespace. Only `Namespace` can be granted; the others are
/// listed so a manifest naming one is not given a namespace (the host then
/// refuses the kind, which is the clearer error).
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "CSIDriver",
    "VolumeAttachment",
];

/// Apply order (Helm's install order): what others refer to comes first;
/// workloads after their configuration and Services; unknown kinds last.
const APPLY_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
];

/// Nesting deeper than this is rejected: manifests need far less, and a bound
/// keeps hostile input off the stack limit.
const MAX_DEPTH: usize = 64;

/// Who an object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectId {
    /// `Kind/name`, as check names and messages show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// One object to apply, with where it came from for messages.
#[derive(Debug, Clone)]
pub struct Object {
    pub id: ObjectId,
    pub manifest: Value,
    pub origin: String,
}

pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// Gives a namespaced object without `metadata.namespace` the stage's
/// namespace, and identifies it. `origin` names it in errors.
pub fn prepare(mut manifest: Value, namespace: &str, origin: &str) -> Result<Object, String> {
    let Some(object) = manifest.as_object_mut() else {
        return Err(format!(
            "{origin}: not a Kubernetes object (a mapping with apiVersion, kind and metadata.name)"
        ));
    };
    let text = |object: &Map<String, Value>, key: &str| -> Result<String, String> {
        match object.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(format!("{origin}: `{key}` must be a non-empty string")),
            None => Err(format!("{origin}: missing `{key}`")),
        }
    };
    let api_version = text(object, "apiVersion")?;
    let kind = text(object, "kind")?;
    let metadata = match object.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(format!("{origin}: `metadata` must be a mapping")),
        None => return Err(format!("{origin}: {kind} has no `metadata` (with `name`)")),
    };
    let name = match metadata.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ if metadata.contains_key("generateName") => {
            return Err(format!(
                "{origin}: {kind} uses `metadata.generateName`; server-side apply needs a fixed `metadata.name`"
            ));
        }
        _ => return Err(format!("{origin}: {kind} has no `metadata.name`")),
    };
    let namespace = if is_cluster_scoped(&kind) {
        String::new()
    } else {
        match metadata.get("namespace") {
            Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
            None | Some(Value::Null | Value::String(_)) => {
                metadata.insert("namespace".into(), Value::from(namespace));
                namespace.to_string()
            }
            Some(_) => {
                return Err(format!(
                    "{origin}: {kind}/{name}: `metadata.namespace` must be a string"
                ));
            }
        }
    };
    Ok(Object {
        id: ObjectId {
            api_version,
            kind,
            namespace,
            name,
        },
        manifest,
        origin: origin.to_string(),
    })
}

/// Sorts into apply order, keeping the given order within a kind, and
/// rejects an object listed twice (the second apply would silently win).
pub fn order(objects: &mut [Object]) -> Result<(), String> {
    let rank = |kind: &str| {
        APPLY_ORDER
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(APPLY_ORDER.len())
    };
    objects.sort_by_key(|o| rank(&o.id.kind));
    for (i, a) in objects.iter().enumerate() {
        if let Some(b) = objects[..i].iter().find(|b| {
            b.id.kind == a.id.kind && b.id.name == a.id.name && b.id.namespace == a.id.namespace
        }) {
            return Err(format!(
                "{} in namespace `{}` is defined twice: {} and {}; keep one",
                a.id, a.id.namespace, b.origin, a.origin
            ));
        }
    }
    Ok(())
}

/// The objects of `paths`: YAML files, or directories whose `*.yaml` and
/// `*.yml` files are read in name order (not recursively).
pub fn read_manifests(paths: &[String], namespace: &str) -> Result<Vec<Object>, String> {
    let help = "help: grant the directory to the stage with fs = { read = [\"…\"] }";
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("`manifests`: reading {path}: {e}\n  {help}"))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found: Vec<String> = std::fs::read_dir(path)
            .map_err(|e| format!("`manifests`: listing {path}: {e}\n  {help}"))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
            .map(|name| format!("{}/{name}", path.trim_end_matches('/')))
            .collect();
        if found.is_empty() {
            return Err(format!(
                "`manifests`: directory {path} has no *.yaml or *.yml files"
            ));
        }
        found.sort();
        files.extend(found);
    }
    let mut objects = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("`manifests`: reading {file}: {e}\n  {help}"))?;
        for (value, origin) in parse_documents(&text, file)? {
            objects.push(prepare(value, namespace, &origin)?);
        }
    }
    if objects.is_empty() {
        return Err(format!("`manifests`: {} hold no objects", paths.join(", ")));
    }
    Ok(objects)
}

/// The documents of a YAML file as JSON values: split on lines that are
/// `---`, empty documents skipped, a `kind: List` expanded into its items.
/// Errors say `file:line:col`.
pub fn parse_documents(text: &str, file: &str) -> Result<Vec<(Value, String)>, String> {
    let mut documents = Vec::new();
    let mut start_line = 0usize;
    let mut chunk = String::new();
    let mut flush = |chunk: &mut String, start_line: usize| -> Result<(), String> {
        let text = std::mem::take(chunk);
        if let Some(value) = parse_document(&text, file, start_line)? {
            let origin = format!("{file}:{}", start_line + 1);
            match value {
                Value::Object(ref o)
                    if o.get("kind").and_then(Value::as_str) == Some("List")
                        && o.get("items").is_some_and(Value::is_array) =>
                {
                    if let Some(Value::Array(items)) = o.get("items") {
                        for (i, item) in items.iter().enumerate() {
                            documents.push((item.clone(), format!("{origin} items[{i}]")));
                        }
                    }
                }
                value => documents.push((value, origin)),
            }
        }
        Ok(())
    };
    for (n, line) in text.lines().enumerate() {
        if is_separator(line) {
            flush(&mut chunk, start_line)?;
            start_line = n + 1;
        } else {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    flush(&mut chunk, start_line)?;
    Ok(documents)
}

/// `---`, optionally followed by blanks or a comment.
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| {
        let rest = rest.trim();
        rest.is_empty() || rest.starts_with('#')
    })
}

/// One document (no `---` inside) as JSON; `None` when it holds nothing.
/// `first_line` is its 0-based line in the file, for positions.
fn parse_document(text: &str, file: &str, first_line: usize) -> Result<Option<Value>, String> {
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
        error: None,
    };
    let at = |m: Marker| format!("{file}:{}:{}", m.line() + first_line, m.col() + 1);
    if let Err(e) = Parser::new_from_str(text).load(&mut builder, true) {
        return Err(format!("{}: {}", at(*e.marker()), e.info()));
    }
    if let Some((mark, message)) = builder.error {
        return Err(format!("{}: {message}", at(mark)));
    }
    Ok(builder.root.filter(|v| !v.is_null()))
}

enum Frame {
    Seq(Vec<Value>),
    Map(Map<String, Value>, Option<String>),
}

/// Builds JSON from parser events (YAML 1.2 core schema for plain scalars).
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    error: Option<(Marker, String)>,
}

impl Builder {
    fn fail(&mut self, mark: Marker, message: impl Into<String>) {
        self.error.get_or_insert((mark, message.into()));
    }

    fn add(&mut self, value: Value, mark: Marker) {
        match self.stack.last_mut() {
            None if self.root.is_some() => {
                self.fail(
                    mark,
                    "more than one document; separate them with a line `---`",
                );
            }
            None => self.root = Some(value),
            Some(Frame::Seq(items)) => items.push(value),
            Some(Frame::Map(map, key)) => match key.take() {
                None => match value {
                    Value::String(k) => {
                        if map.contains_key(&k) {
                            self.fail(mark, format!("duplicate key `{k}`"));
                        } else {
                            *key = Some(k);
                        }
                    }
                    Value::Number(n) => *key = Some(n.to_string()),
                    Value::Bool(b) => *key = Some(b.to_string()),
                    _ => self.fail(mark, "a mapping key must be a plain value"),
                },
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Alias(_) => self.fail(
                mark,
                "YAML aliases (`*name`) are not supported; write the value out",
            ),
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 {
                    return self.fail(
                        mark,
                        "YAML anchors (`&name`) are not supported; write the value out",
                    );
                }
                let forced_string = match &tag {
                    None => false,
                    Some(t) if is_str_tag(&t.handle, &t.suffix) => true,
                    Some(t) => {
                        return self.fail(
                            mark,
                            format!("YAML tag `{}{}` is not supported", t.handle, t.suffix),
                        );
                    }
                };
                let value = if forced_string || style != TScalarStyle::Plain {
                    Value::String(text)
                } else {
                    match plain_scalar(&text) {
                        Ok(v) => v,
                        Err(e) => return self.fail(mark, e),
                    }
                };
                self.add(value, mark);
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if anchor != 0 || tag.is_some() {
                    return self.fail(
                        mark,
                        "YAML anchors and tags on collections are not supported",
                    );
                }
                if self.stack.len() >= MAX_DEPTH {
                    return self.fail(mark, format!("nested deeper than {MAX_DEPTH} levels"));
                }
                if matches!(ev, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq(Vec::new()));
                } else {
                    self.stack.push(Frame::Map(Map::new(), None));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let value = match self.stack.pop() {
                    Some(Frame::Seq(items)) => Value::Array(items),
                    Some(Frame::Map(map, _)) => Value::Object(map),
                    None => return,
                };
                self.add(value, mark);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// `!!str` (the parser may hand it over resolved to its full name).
fn is_str_tag(handle: &str, suffix: &str) -> bool {
    matches!(handle, "!!" | "tag:yaml.org,2002:") && suffix == "str"
}

/// A plain (unquoted) scalar under the YAML 1.2 core schema.
fn plain_scalar(text: &str) -> Result<Value, String> {
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "-.inf" | ".nan" | ".NaN" | ".NAN" => {
            return Err(format!("`{text}` has no JSON form; quote it for a string"));
        }
        _ => {
            let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
            let negative = text.starts_with('-');
            let radix = |digits: &str, radix: u32| {
                i64::from_str_radix(digits, radix)
                    .ok()
                    .map(|n| Value::from(if negative { -n } else { n }))
            };
            if let Some(v) = unsigned
                .strip_prefix("0x")
                .and_then(|d| radix(d, 16))
                .or_else(|| unsigned.strip_prefix("0o").and_then(|d| radix(d, 8)))
            {
                v
            } else if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
                match text.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => match text.parse::<u64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => return Err(format!("integer `{text}` is out of range")),
                    },
                }
            } else if looks_like_float(unsigned) {
                match text.parse::<f64>().ok().and_then(Number::from_f64) {
                    Some(n) => Value::Number(n),
                    None => Value::String(text.to_string()),
                }
            } else {
                Value::String(text.to_string())
            }
        }
    })
}

/// `[0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)?` with at least one digit before the exponent.
fn looks_like_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits_ok = mantissa.bytes().any(|b| b.is_ascii_digit())
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && mantissa.bytes().filter(|&b| b == b'.').count() <= 1;
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    digits_ok && exponent_ok && (mantissa.contains('.') || exponent.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manifests_from_files_and_directories() {
        let dir = std::env::temp_dir().join(format!("valero-k8s-test-{}", std::process::id()));
        let sub = dir.join("k8s");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join("b.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
        )
        .unwrap();
        std::fs::write(sub.join("a.yml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: d, namespace: other}\n").unwrap();
        std::fs::write(sub.join("notes.txt"), "not yaml: [").unwrap();
        let single = dir.join("ns.json");
        std::fs::write(
            &single,
            "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"ns\"}}",
        )
        .unwrap();
        let paths = [
            sub.to_string_lossy().into_owned(),
            single.to_string_lossy().into_owned(),
        ];
        let objects = read_manifests(&paths, "ns").unwrap();
        let ids: Vec<(String, String)> = objects
            .iter()
            .map(|o| (o.id.to_string(), o.id.namespace.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                ("ConfigMap/c".to_string(), "ns".to_string()),
                ("ConfigMap/d".to_string(), "other".to_string()),
                ("Service/s".to_string(), "ns".to_string()),
                ("Namespace/ns".to_string(), String::new()),
            ]
        );
        assert!(
            objects[1].origin.ends_with("a.yml:5"),
            "{}",
            objects[1].origin
        );
        let missing =
            read_manifests(&[dir.join("nope").to_string_lossy().into_owned()], "ns").unwrap_err();
        assert!(missing.contains("fs = { read"), "{missing}");
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(
            read_manifests(&[empty.to_string_lossy().into_owned()], "ns")
                .unwrap_err()
                .contains("no *.yaml")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn documents_split_on_separator_lines() {
        let text = "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  PORT: \"8101\"\n  N: 3\n--- # second\napiVersion: v1\nkind: Service\nmetadata: { name: a }\n---\n\n";
        let docs = parse_documents(text, "k.yaml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].0["data"], json!({ "PORT": "8101", "N": 3 }));
        assert_eq!(docs[0].1, "k.yaml:3");
        assert_eq!(docs[1].0["metadata"]["name"], "a");
        assert_eq!(docs[1].1, "k.yaml:11");
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let docs = parse_documents(
            "a: yes\nb: true\nc: 1.5\nd: '1.5'\ne: ~\nf: 0x1F\ng: -3\nh: 1.0.5\ni: !!str 42\nj: |\n  text\n",
            "s.yaml",
        )
        .unwrap();
        assert_eq!(
            docs[0].0,
            json!({ "a": "yes", "b": true, "c": 1.5, "d": "1.5", "e": null, "f": 31, "g": -3,
                    "h": "1.0.5", "i": "42", "j": "text\n" })
        );
    }

    #[test]
    fn errors_point_at_file_line_col() {
        let err = parse_documents("a: 1\n---\nb: 1\nb: 2\n", "d.yaml").unwrap_err();
        assert!(err.starts_with("d.yaml:4:"), "{err}");
        assert!(err.contains("duplicate key `b`"), "{err}");
        let err = parse_documents("x: &a 1\ny: *a\n", "d.yaml").unwrap_err();
        assert!(err.contains("anchors"), "{err}");
        let err = parse_documents("a: [1\n", "d.yaml").unwrap_err();
        assert!(err.starts_with("d.yaml:"), "{err}");
    }

    #[test]
    fn lists_are_expanded() {
        let docs = parse_documents(
            "kind: List\napiVersion: v1\nitems:\n- {kind: ConfigMap, apiVersion: v1, metadata: {name: a}}\n- {kind: ConfigMap, apiVersion: v1, metadata: {name: b}}\n",
            "l.yaml",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].1, "l.yaml:1 items[1]");
    }

    #[test]
    fn prepare_sets_missing_namespaces_only_on_namespaced_kinds() {
        let cm = prepare(
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "a" } }),
            "ns1",
            "x",
        )
        .unwrap();
        assert_eq!(cm.id.namespace, "ns1");
        assert_eq!(cm.manifest["metadata"]["namespace"], "ns1");
        let other = prepare(
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "a", "namespace": "ns2" } }),
            "ns1",
            "x",
        )
        .unwrap();
        assert_eq!(other.id.namespace, "ns2");
        let ns = prepare(
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "ns1" } }),
            "ns1",
            "x",
        )
        .unwrap();
        assert_eq!(ns.id.namespace, "");
        assert!(ns.manifest["metadata"].get("namespace").is_none());
        assert_eq!(ns.id.to_string(), "Namespace/ns1");
    }

    #[test]
    fn prepare_names_what_is_missing() {
        let err = prepare(json!({ "kind": "ConfigMap" }), "n", "f.yaml:3").unwrap_err();
        assert_eq!(err, "f.yaml:3: missing `apiVersion`");
        let err = prepare(
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": {} }),
            "n",
            "f.yaml:3",
        )
        .unwrap_err();
        assert_eq!(err, "f.yaml:3: ConfigMap has no `metadata.name`");
        assert!(prepare(json!([1]), "n", "f").is_err());
    }

    #[test]
    fn order_is_by_kind_then_as_given_and_rejects_duplicates() {
        let obj = |kind: &str, name: &str| {
            prepare(
                json!({ "apiVersion": "v1", "kind": kind, "metadata": { "name": name } }),
                "ns",
                &format!("{kind}-{name}"),
            )
            .unwrap()
        };
        let mut objects = vec![
            obj("Deployment", "b"),
            obj("Widget", "w"),
            obj("Service", "a"),
            obj("Deployment", "a"),
            obj("ConfigMap", "z"),
            obj("Namespace", "ns"),
        ];
        order(&mut objects).unwrap();
        let names: Vec<String> = objects.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(
            names,
            [
                "Namespace/ns",
                "ConfigMap/z",
                "Service/a",
                "Deployment/b",
                "Deployment/a",
                "Widget/w"
            ]
        );
        let mut dup = vec![obj("Service", "a"), obj("Service", "a")];
        assert!(order(&mut dup).unwrap_err().contains("defined twice"));
    }
}
