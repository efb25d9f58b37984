//! Host policy of the `containers` capability, without Docker: names and
//! their scoping, labels, and the checks on a container spec and on host
//! paths. Every refusal reads `refused by host policy (RULE): …`.

use std::path::{Component, Path, PathBuf};

use sha2::Digest as _;

use crate::host::bindings::valero::stage::containers::{ContainerSpec, RestartPolicy};
use crate::pipeline::ContainerGrant;

/// The label every object a stage creates carries; a stage may only touch
/// objects whose value is its project.
pub const PROJECT_LABEL: &str = "valero.project";
/// `sha256:` of the spec a container was created from (see [`config_hash`]).
pub const CONFIG_HASH_LABEL: &str = "valero.config-hash";
/// The only address ports may be published on.
pub const LOOPBACK: &str = "127.0.0.1";

pub fn refused(rule: &str, what: impl std::fmt::Display) -> String {
    format!("refused by host policy ({rule}): {what}")
}

/// Docker object names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 100 characters.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = (1..=100).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name `{name}`: use letters, digits, `_`, `.` and `-`, starting with a letter or digit"
        ))
    }
}

/// `fibu` -> `<project>-fibu`; an already scoped name is kept.
pub fn scoped(project: &str, name: &str) -> String {
    if name.starts_with(&format!("{project}-")) {
        name.to_string()
    } else {
        format!("{project}-{name}")
    }
}

/// Names to try, in order, when a stage refers to an existing object: the
/// scoped name first, then the name as given (a scoped name or an id). Which
/// one matches does not matter for safety: the project label is checked after.
pub fn candidates(project: &str, name: &str) -> Vec<String> {
    let s = scoped(project, name);
    if s == name {
        vec![s]
    } else {
        vec![s, name.to_string()]
    }
}

/// Image tags: `fibu-service:1.0.5` -> `<project>/fibu-service:1.0.5`.
pub fn scoped_tag(project: &str, tag: &str) -> Result<String, String> {
    let ok = !tag.is_empty()
        && tag.len() <= 200
        && tag.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'.' | b'-' | b'/' | b':')
        })
        && tag.as_bytes()[0].is_ascii_alphanumeric()
        && tag.matches(':').count() <= 1;
    if !ok {
        return Err(format!(
            "invalid image tag `{tag}`: use lower-case `name[:version]` (letters, digits, `_ . - /`)"
        ));
    }
    Ok(if tag.starts_with(&format!("{project}/")) {
        tag.to_string()
    } else {
        format!("{project}/{tag}")
    })
}

pub fn image_candidates(project: &str, image: &str) -> Vec<String> {
    if image.starts_with(&format!("{project}/")) {
        vec![image.to_string()]
    } else {
        vec![format!("{project}/{image}"), image.to_string()]
    }
}

/// Is `labels` marked as belonging to `project`?
pub fn owned<'a>(
    project: &str,
    mut labels: impl Iterator<Item = (&'a String, &'a String)>,
) -> bool {
    labels.any(|(k, v)| k == PROJECT_LABEL && v == project)
}

pub fn not_owned(project: &str, kind: &str, name: &str) -> String {
    refused(
        "project scope",
        format!(
            "{kind} `{name}` does not belong to project `{project}` (no label {PROJECT_LABEL}={project})"
        ),
    )
}

/// Labels from the guest plus the host's; keys under `valero.` are refused.
pub fn labels(
    project: &str,
    given: &[(String, String)],
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in given {
        if k.starts_with("valero.") {
            return Err(refused(
                "valero.* labels are the host's",
                format!("label `{k}` cannot be set by a stage"),
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    out.insert(PROJECT_LABEL.to_string(), project.to_string());
    Ok(out)
}

/// The knobs that would hand a container the host: refused whatever the grant.
pub fn check_dangerous(spec: &ContainerSpec) -> Result<(), String> {
    let who = format!("container `{}`", spec.name);
    if spec.privileged {
        return Err(refused(
            "no privileged containers",
            format!("{who} asks for privileged mode"),
        ));
    }
    if !spec.cap_add.is_empty() {
        return Err(refused(
            "no added capabilities",
            format!("{who} asks for cap-add {}", spec.cap_add.join(", ")),
        ));
    }
    match spec.network_mode.as_str() {
        "" | "bridge" | "default" | "none" => {}
        "host" => {
            return Err(refused(
                "no host network",
                format!("{who} asks for network mode `host`"),
            ));
        }
        other => {
            return Err(refused(
                "network mode must be bridge or none",
                format!("{who} asks for network mode `{other}`"),
            ));
        }
    }
    if spec.network_mode == "none" && spec.network.is_some() {
        return Err(format!(
            "{who}: network mode `none` and a network exclude each other"
        ));
    }
    match spec.pid_mode.as_str() {
        "" => {}
        "host" => {
            return Err(refused(
                "no host PID namespace",
                format!("{who} asks for PID mode `host`"),
            ));
        }
        other => {
            return Err(refused(
                "no shared PID namespace",
                format!("{who} asks for PID mode `{other}`"),
            ));
        }
    }
    for p in &spec.ports {
        let ip = if p.host_ip.is_empty() {
            LOOPBACK
        } else {
            p.host_ip.as_str()
        };
        if ip != LOOPBACK {
            return Err(refused(
                "ports only on 127.0.0.1",
                format!("{who} asks to publish port {} on {ip}", p.container_port),
            ));
        }
        if p.container_port == 0 {
            return Err(format!("{who}: container port 0 is not a port"));
        }
    }
    for path in spec
        .volumes
        .iter()
        .map(|v| &v.container_path)
        .chain(spec.binds.iter().map(|b| &b.container_path))
    {
        if !path.starts_with('/') {
            return Err(format!("{who}: container path `{path}` must be absolute"));
        }
    }
    Ok(())
}

/// Where the Docker engine's socket may be: always refused as a bind mount,
/// together with every directory containing it.
pub fn docker_sockets() -> Vec<PathBuf> {
    let mut out = vec![
        PathBuf::from("/var/run/docker.sock"),
        PathBuf::from("/run/docker.sock"),
    ];
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && let Some(path) = host.strip_prefix("unix://")
    {
        out.push(PathBuf::from(path));
    }
    for p in out.clone() {
        if let Ok(c) = p.canonicalize() {
            out.push(c);
        }
    }
    out
}

/// A host path a stage wants to bind-mount, canonicalized and checked:
/// never `/` or the Docker socket (or a directory holding it), and only
/// inside a granted `bind_mounts` directory.
pub fn bind_source(
    grant: &ContainerGrant,
    base_dir: &Path,
    asked: &str,
) -> Result<PathBuf, String> {
    let joined = base_dir.join(asked);
    let path = joined
        .canonicalize()
        .map_err(|e| format!("bind mount `{asked}`: {}: {e}", joined.display()))?;
    if path == Path::new("/") {
        return Err(refused(
            "never / or the Docker socket",
            format!("bind mount `{asked}` is `/`"),
        ));
    }
    if docker_sockets().iter().any(|s| s.starts_with(&path)) {
        return Err(refused(
            "never / or the Docker socket",
            format!(
                "bind mount `{asked}` ({}) is or holds the Docker socket",
                path.display()
            ),
        ));
    }
    let inside = grant.bind_mounts.iter().any(|dir| {
        dir.canonicalize()
            .is_ok_and(|dir| dir != Path::new("/") && path.starts_with(dir))
    });
    if !inside {
        return Err(refused(
            "bind mounts only inside granted bind_mounts",
            format!(
                "`{asked}` ({}) is not inside {}",
                path.display(),
                list(&grant.bind_mounts)
            ),
        ));
    }
    Ok(path)
}

/// A build context directory, canonicalized, inside a granted `build_contexts` one.
pub fn build_context(
    grant: &ContainerGrant,
    base_dir: &Path,
    asked: &str,
) -> Result<PathBuf, String> {
    let joined = base_dir.join(asked);
    let path = joined
        .canonicalize()
        .map_err(|e| format!("build context `{asked}`: {}: {e}", joined.display()))?;
    let inside = grant
        .build_contexts
        .iter()
        .any(|dir| dir.canonicalize().is_ok_and(|dir| path.starts_with(dir)));
    if !inside || !path.is_dir() {
        return Err(refused(
            "build contexts only from granted build_contexts",
            format!(
                "`{asked}` ({}) is not inside {}",
                path.display(),
                list(&grant.build_contexts)
            ),
        ));
    }
    Ok(path)
}

/// A Dockerfile path inside the context: relative, no `..`.
pub fn dockerfile(asked: &str) -> Result<String, String> {
    let name = if asked.is_empty() {
        "Dockerfile"
    } else {
        asked
    };
    let ok = Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "dockerfile `{asked}` must be a path inside the build context"
        ))
    }
}

fn list(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        "any granted directory (none are granted)".into()
    } else {
        format!(
            "the granted {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// `sha256:` over a canonical JSON form of the spec (the guest's view of it).
pub fn config_hash(spec: &ContainerSpec) -> String {
    let restart = match spec.restart {
        RestartPolicy::No => "no",
        RestartPolicy::Always => "always",
        RestartPolicy::UnlessStopped => "unless-stopped",
        RestartPolicy::OnFailure => "on-failure",
    };
    let json = serde_json::json!({
        "name": spec.name,
        "image": spec.image,
        "command": spec.command,
        "env": spec.env,
        "ports": spec.ports.iter().map(|p| (p.container_port, p.host_port, &p.host_ip)).collect::<Vec<_>>(),
        "volumes": spec.volumes.iter().map(|v| (&v.volume, &v.container_path, v.read_only)).collect::<Vec<_>>(),
        "binds": spec.binds.iter().map(|b| (&b.host_path, &b.container_path, b.read_only)).collect::<Vec<_>>(),
        "network": spec.network,
        "aliases": spec.aliases,
        "labels": spec.labels,
        "healthcheck": spec.healthcheck.as_ref().map(|h| (&h.test, h.interval_ms, h.timeout_ms, h.retries, h.start_period_ms)),
        "restart": restart,
        "network_mode": spec.network_mode,
    });
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(json.to_string()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::bindings::valero::stage::containers::PortBinding;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            image: "web:1".into(),
            command: vec![],
            env: vec![],
            ports: vec![],
            volumes: vec![],
            binds: vec![],
            network: None,
            aliases: vec![],
            labels: vec![],
            healthcheck: None,
            restart: RestartPolicy::No,
            privileged: false,
            cap_add: vec![],
            network_mode: String::new(),
            pid_mode: String::new(),
        }
    }

    #[test]
    fn dangerous_knobs_are_refused_with_their_rule() {
        assert!(check_dangerous(&spec()).is_ok());
        type Change = Box<dyn Fn(&mut ContainerSpec)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|s| s.privileged = true),
                "(no privileged containers)",
            ),
            (
                Box::new(|s| s.cap_add = vec!["SYS_ADMIN".into()]),
                "(no added capabilities)",
            ),
            (
                Box::new(|s| s.network_mode = "host".into()),
                "(no host network)",
            ),
            (
                Box::new(|s| s.network_mode = "container:x".into()),
                "bridge or none",
            ),
            (
                Box::new(|s| s.pid_mode = "host".into()),
                "(no host PID namespace)",
            ),
            (
                Box::new(|s| {
                    s.ports = vec![PortBinding {
                        container_port: 80,
                        host_port: 8080,
                        host_ip: "0.0.0.0".into(),
                    }]
                }),
                "(ports only on 127.0.0.1)",
            ),
        ];
        for (change, rule) in cases {
            let mut s = spec();
            change(&mut s);
            let e = check_dangerous(&s).unwrap_err();
            assert!(
                e.starts_with("refused by host policy") && e.contains(rule),
                "{e}"
            );
        }
        let mut s = spec();
        s.ports = vec![PortBinding {
            container_port: 80,
            host_port: 0,
            host_ip: String::new(),
        }];
        assert!(check_dangerous(&s).is_ok());
    }

    #[test]
    fn names_are_scoped_and_host_labels_reserved() {
        assert_eq!(scoped("p", "web"), "p-web");
        assert_eq!(scoped("p", "p-web"), "p-web");
        assert_eq!(candidates("p", "abc"), ["p-abc", "abc"]);
        assert_eq!(scoped_tag("p", "web:1").unwrap(), "p/web:1");
        assert_eq!(scoped_tag("p", "p/web").unwrap(), "p/web");
        assert!(scoped_tag("p", "Web").is_err());
        assert!(scoped_tag("p", "web@sha256:00").is_err());
        assert!(check_name("container", "a/b").is_err());
        assert!(check_name("container", "-a").is_err());
        let l = labels("p", &[("app".into(), "x".into())]).unwrap();
        assert_eq!(l[PROJECT_LABEL], "p");
        let e = labels("p", &[(PROJECT_LABEL.into(), "other".into())]).unwrap_err();
        assert!(e.contains("valero.* labels"), "{e}");
    }

    #[test]
    fn bind_sources_stay_inside_the_grant() {
        let dir = tempfile::tempdir().unwrap();
        let granted = dir.path().join("data");
        std::fs::create_dir_all(granted.join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        std::os::unix::fs::symlink("/etc", granted.join("escape")).unwrap();
        let grant = ContainerGrant {
            project: "p".into(),
            build_contexts: vec![],
            bind_mounts: vec![granted.clone()],
        };
        assert!(bind_source(&grant, dir.path(), "data/sub").is_ok());
        for (asked, rule) in [
            ("other", "inside granted bind_mounts"),
            ("data/escape", "inside granted bind_mounts"),
            ("data/../other", "inside granted bind_mounts"),
            ("/", "never / or the Docker socket"),
        ] {
            let e = bind_source(&grant, dir.path(), asked).unwrap_err();
            assert!(e.contains(rule), "{asked}: {e}");
        }
        assert!(dockerfile("docker/Dockerfile").is_ok());
        assert!(dockerfile("../Dockerfile").is_err());
        assert!(dockerfile("/etc/passwd").is_err());
    }
}
