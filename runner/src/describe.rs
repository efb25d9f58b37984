//! Human-readable description of a plan (`valero plan`).

use std::fmt::Write as _;

use crate::pipeline::{Grants, Limits, Pipeline, PluginRef, PortPattern};
use crate::plan::Plan;

pub fn plan(p: &Pipeline, plan: &Plan) -> String {
    let mut out = String::new();
    let levels = plan.stages.iter().map(|s| s.level + 1).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "pipeline `{}` on target `{}`: {} stages in {} levels (stages of one level may run concurrently)",
        p.name,
        plan.target,
        plan.stages.len(),
        levels
    );
    for level in 0..levels {
        let _ = writeln!(out, "\nlevel {level}");
        for planned in plan.stages.iter().filter(|s| s.level == level) {
            let s = &p.stages[planned.index];
            let plugin = match &s.plugin {
                PluginRef::Builtin(n) => format!("builtin:{n}"),
                PluginRef::Path(path) => path.display().to_string(),
            };
            let _ = writeln!(out, "  {}  ({plugin})", s.name);
            if !planned.needs.is_empty() {
                let _ = writeln!(out, "      needs:   {}", planned.needs.join(", "));
            }
            if !planned.dropped_needs.is_empty() {
                let _ = writeln!(
                    out,
                    "      ignores: {} (not in this run: runs without their outputs)",
                    planned.dropped_needs.join(", ")
                );
            }
            let mut flags = vec![format!("timeout {}", humantime::format_duration(s.timeout))];
            if s.retries.attempts > 1 {
                flags.push(format!(
                    "{} attempts, backoff {}",
                    s.retries.attempts,
                    humantime::format_duration(s.retries.backoff)
                ));
            }
            if s.always {
                flags.push("always".into());
            }
            if s.continue_on_error {
                flags.push("continue_on_error".into());
            }
            let _ = writeln!(out, "      runs:    {}", flags.join(", "));
            let _ = writeln!(out, "      grants:  {}", grants(&s.grants));
            let _ = writeln!(out, "      limits:  {}", limits(&s.limits));
        }
    }
    if !plan.excluded.is_empty() {
        let _ = writeln!(out, "\nnot in this run");
        for (name, why) in &plan.excluded {
            let _ = writeln!(out, "  {name}  ({why})");
        }
    }
    out
}

/// A stage's limits, with the fixed host caps that come with every stage.
fn limits(l: &Limits) -> String {
    format!(
        "memory {} (linear memories and tables), output {} (stdout and stderr each), {} host resources",
        size(l.memory),
        size(l.output),
        crate::sandbox::host_limits::MAX_TABLE_ENTRIES
    )
}

/// `268435456` → `256 MiB`; sizes that are not whole MiB or KiB stay in bytes.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

fn grants(g: &Grants) -> String {
    let mut parts = Vec::new();
    let port = |p: &PortPattern| match p {
        PortPattern::Any => "*".to_string(),
        PortPattern::Exact(n) => n.to_string(),
    };
    if !g.env.is_empty() {
        parts.push(format!("env [{}]", g.env.join(", ")));
    }
    if !g.secrets.is_empty() {
        parts.push(format!("secrets [{}]", g.secrets.join(", ")));
    }
    let paths = |v: &[std::path::PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !g.fs_read.is_empty() {
        parts.push(format!("fs.read [{}]", paths(&g.fs_read)));
    }
    if !g.fs_write.is_empty() {
        parts.push(format!("fs.write [{}]", paths(&g.fs_write)));
    }
    if !g.http.is_empty() {
        let v: Vec<String> = g
            .http
            .iter()
            .map(|h| format!("{}://{}:{}", h.scheme, h.host, port(&h.port)))
            .collect();
        parts.push(format!("http [{}]", v.join(", ")));
    }
    if !g.tcp.is_empty() {
        let v: Vec<String> = g
            .tcp
            .iter()
            .map(|t| match &t.host {
                crate::pipeline::TcpHost::Localhost => format!("localhost:{}", port(&t.port)),
                crate::pipeline::TcpHost::Net(n) => format!("{n}:{}", port(&t.port)),
            })
            .collect();
        parts.push(format!("tcp [{}]", v.join(", ")));
    }
    if !g.lookup.is_empty() {
        parts.push(format!("lookup [{}]", g.lookup.join(", ")));
    }
    if !g.http.is_empty() || !g.tcp.is_empty() {
        let nets: Vec<String> = if g.addresses.is_empty() {
            crate::sandbox::net::default_addresses()
        } else {
            g.addresses.clone()
        }
        .iter()
        .map(|n| n.to_string())
        .collect();
        parts.push(format!("addresses [{}]", nets.join(", ")));
    }
    for c in &g.capabilities {
        match (c, &g.databases) {
            (
                crate::pipeline::Capability::Databases,
                crate::pipeline::DatabaseScope::Only(names),
            ) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                parts.push(format!("databases [{}]", names.join(", ")));
            }
            (crate::pipeline::Capability::Kubernetes, _) => {
                let Some(k) = &g.kubernetes else {
                    parts.push(c.name().to_string());
                    continue;
                };
                let join = |v: &std::collections::BTreeSet<String>| {
                    v.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                };
                parts.push(format!(
                    "kubernetes (namespaces [{}]; kinds [{}])",
                    join(&k.namespaces),
                    join(&k.kinds)
                ));
            }
            (crate::pipeline::Capability::Containers, _) => {
                let Some(c) = &g.containers else {
                    parts.push(c.name().to_string());
                    continue;
                };
                let mut s = format!("containers (project {}", c.project);
                if !c.build_contexts.is_empty() {
                    let _ = write!(s, "; build_contexts [{}]", paths(&c.build_contexts));
                }
                if !c.bind_mounts.is_empty() {
                    let _ = write!(s, "; bind_mounts [{}]", paths(&c.bind_mounts));
                }
                s.push(')');
                parts.push(s);
            }
            _ => parts.push(c.name().to_string()),
        }
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("; ")
    }
}

/// What `valero plan` shows of a plan-only run: per stage its summary, and
/// per object of its `plan …` checks what would happen to it.
pub fn dry_run(target: &str, report: &crate::report::RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ndry run on target `{target}` (server-side; nothing was changed)"
    );
    for stage in &report.stages {
        let _ = writeln!(out, "  {}: {}", stage.name, stage.summary);
        if let Some(reason) = stage.reason.as_deref().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "    {reason}");
        }
        for check in &stage.checks {
            let Some(object) = check.name.strip_prefix("plan ") else {
                continue;
            };
            let evidence = |key: &str| {
                check
                    .evidence
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or("", |(_, v)| v.as_str())
            };
            let line = match (check.verdict, evidence("change")) {
                (crate::report::Verdict::Pass, "created") => format!("+ {object}"),
                (crate::report::Verdict::Pass, "unchanged") => format!("= {object}"),
                (crate::report::Verdict::Pass, "configured") => {
                    format!("~ {object}: {}", evidence("changed_fields"))
                }
                _ => format!("! {object}: {}", check.message),
            };
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(
        out,
        "  (+ would be created, ~ would change these fields, = unchanged, ! cannot be applied)"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_shows_each_stages_limits() {
        let l = Limits {
            memory: 64 << 20,
            output: 1 << 20,
        };
        assert_eq!(
            limits(&l),
            "memory 64 MiB (linear memories and tables), output 1 MiB (stdout and stderr each), 4096 host resources"
        );
        assert_eq!(size(3 << 30), "3 GiB");
        assert_eq!(size(1500), "1500 bytes");
    }
}
