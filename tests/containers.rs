//! The `containers` capability against a real Docker engine, through the
//! `wants-containers` test plugin: build a `FROM scratch` image from a
//! granted context, run a container of the project, and every host-policy
//! refusal. Tests that need the engine run only when `VALERO_TEST_DOCKER=1`
//! at build time (`.ci/run` sets it after starting dockerd); otherwise they
//! are listed as ignored, with the reason. Grant validation and the load-time refusal need no engine.
//!
//! Nothing here talks to a registry: images are `FROM scratch` plus a static
//! binary compiled with the host's gcc. Ports are published on 127.0.0.1 only.

mod common;

use std::path::{Path, PathBuf};

use common::docker::{Cleanup, docker, noop_binary, project_name};
use common::{Project, header, plugin_lines, stage, stderr};
use serde_json::{Value, json};

/// Writes the build context `ctx/` (noop binary, Dockerfile, .dockerignore).
fn write_context(project: &Project) {
    let ctx = project.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(noop_binary(), ctx.join("noop")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY noop /noop\nCMD [\"/noop\"]\n",
    )
    .unwrap();
    // Copies a file .dockerignore leaves out: must fail to build.
    std::fs::write(
        ctx.join("Dockerfile.secret"),
        "FROM scratch\nCOPY secret.txt /secret.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("secret.txt"), "do not send").unwrap();
    std::fs::write(
        ctx.join(".dockerignore"),
        "# not for the engine\nsecret.txt\n*.log\n",
    )
    .unwrap();
    std::fs::create_dir_all(project.path().join("data")).unwrap();
    std::fs::create_dir_all(project.path().join("other")).unwrap();
}

/// One stage running `steps` with the given containers grant (a TOML value).
fn stage_toml(name: &str, steps: &Value, grant: &str, needs: &[&str]) -> String {
    let with = toml::to_string(&json!({ "steps": steps })).unwrap();
    let mut with_table = format!("[stages.{name}.with]\n");
    // `toml` writes `steps` as an array of tables; put it under the stage's `with`.
    for line in with.lines() {
        let line = line
            .replace("[[steps", &format!("[[stages.{name}.with.steps"))
            .replace("[steps", &format!("[stages.{name}.with.steps"));
        with_table.push_str(&line);
        with_table.push('\n');
    }
    format!(
        "[stages.{name}]\n{}needs = {needs:?}\ngrants = {{ containers = {grant} }}\n\n{with_table}\n",
        plugin_lines("wants-containers")
    )
}

/// Runs the pipeline; returns (exit code, report, the `results` of each stage).
fn run(project: &Project) -> (i32, Value, String) {
    let (code, report, out) = project.run(&[]);
    (code, report, stderr(&out))
}

fn results(report: &Value, name: &str, err: &str) -> Vec<(bool, Value)> {
    stage(report, name)["outputs"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {report:#}\n{err}"))
        .iter()
        .map(|r| (r["ok"].as_bool().unwrap(), r["answer"].clone()))
        .collect()
}

fn build_step() -> Value {
    json!({ "op": "build", "context": "ctx", "tag": "noop:1", "labels": { "org.test": "yes" } })
}

fn grant(project: &str) -> String {
    format!("{{ project = {project:?}, build_contexts = [\"ctx\"], bind_mounts = [\"data\"] }}")
}

#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn a_project_container_is_built_run_inspected_and_removed() {
    let p = project_name("life");
    let _cleanup = Cleanup(vec![p.clone()]);
    let up = json!([
        build_step(),
        { "op": "network", "name": "net" },
        { "op": "volume", "name": "cache" },
        { "op": "create", "spec": {
            "name": "app", "image": "noop:1", "command": ["/noop", "sleep"],
            "env": { "MODE": "test" }, "network": "net", "aliases": ["app"],
            "volumes": [{ "source": "cache", "target": "/cache" }],
            "binds": [{ "source": "data", "target": "/data", "read_only": true }],
            "ports": [{ "container_port": 8080, "host_port": 0 }],
            "labels": { "tier": "test" }, "restart": "no",
            "healthcheck": { "test": ["CMD", "/noop"], "interval_ms": 300, "timeout_ms": 2000, "retries": 3 }
        }},
        { "op": "start", "name": "app" },
        { "op": "wait", "name": "app", "state": "running", "health": "healthy", "timeout_ms": 30000 },
        { "op": "create", "spec": { "name": "once", "image": "noop:1" } },
        { "op": "start", "name": "once" },
        { "op": "wait", "name": "once", "state": "exited", "timeout_ms": 20000 },
        { "op": "list" },
        { "op": "logs", "name": "once", "tail": 10 },
        { "op": "config-hash", "spec": { "name": "once", "image": "noop:1" } },
    ]);
    let project = Project::new(&format!(
        "{}{}",
        header("containers"),
        stage_toml("up", &up, &grant(&p), &[])
    ));
    write_context(&project);
    let (code, report, err) = run(&project);
    let r = results(&report, "up", &err);
    for (i, (ok, answer)) in r.iter().enumerate() {
        assert!(ok, "step {i} failed: {answer}\n{report:#}");
    }
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert!(
        r[0].1.as_str().unwrap().starts_with("sha256:"),
        "{:?}",
        r[0]
    );
    assert_eq!(r[1].1, format!("{p}-net"));
    assert_eq!(r[2].1, format!("{p}-cache"));
    let app = &r[5].1;
    assert_eq!(app["name"], format!("{p}-app"));
    assert_eq!(app["health"], "healthy");
    assert_eq!(app["labels"]["valero.project"], p.as_str());
    assert_eq!(app["labels"]["tier"], "test");
    assert!(app["config_hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(app["image"], format!("{p}/noop:1"));
    let once = &r[8].1;
    assert_eq!(once["exit_code"], 0, "{once}");
    // The host's config hash of a spec is the label of the container created from it.
    assert_eq!(r[11].1, once["config_hash"]);
    let listed: Vec<&str> = r[9]
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [format!("{p}-app"), format!("{p}-once")]);
    // The build log reached the stage log.
    let logs = stage(&report, "up")["attempts"][0]["logs"].to_string();
    assert!(
        logs.contains("COPY noop /noop") || logs.contains("Step 2/3"),
        "{logs}"
    );

    // What the engine really got: loopback-only ports, not privileged, label, bind read-only.
    let app_name = format!("{p}-app");
    let bindings = docker(&[
        "inspect",
        "-f",
        "{{json .HostConfig.PortBindings}}",
        &app_name,
    ]);
    assert!(bindings.contains("\"HostIp\":\"127.0.0.1\""), "{bindings}");
    let privileged = docker(&["inspect", "-f", "{{.HostConfig.Privileged}}", &app_name]);
    assert_eq!(privileged.trim(), "false");
    let port = docker(&["port", &app_name, "8080/tcp"]);
    assert!(port.trim().starts_with("127.0.0.1:"), "{port}");

    // A second run tears it all down.
    let down = json!([
        { "op": "stop", "name": "app" },
        { "op": "inspect", "name": "app" },
        { "op": "remove", "name": "once" },
        { "op": "remove-project" },
        { "op": "list" },
    ]);
    std::fs::write(
        project.path().join("pipeline.toml"),
        format!(
            "{}{}",
            header("containers"),
            stage_toml("down", &down, &grant(&p), &[])
        ),
    )
    .unwrap();
    let (code, report, err) = run(&project);
    let r = results(&report, "down", &err);
    for (i, (ok, answer)) in r.iter().enumerate() {
        assert!(ok, "step {i} failed: {answer}\n{report:#}");
    }
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(r[1].1["state"], "exited");
    let removed = &r[3].1;
    assert_eq!(removed["containers"], json!([app_name]));
    assert_eq!(removed["networks"], json!([format!("{p}-net")]));
    assert_eq!(removed["volumes"], json!([format!("{p}-cache")]));
    assert_eq!(r[4].1, json!([]));
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=valero.project={p}"),
    ]);
    assert!(left.trim().is_empty(), "{left}");
}

#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn hostile_requests_are_refused_by_host_policy() {
    let p = project_name("hostile");
    let _cleanup = Cleanup(vec![p.clone()]);
    let spec = |extra: Value| {
        let mut s = json!({ "name": "evil", "image": "noop:1" });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "op": "create", "spec": s })
    };
    let socket_dir = Path::new("/var/run/docker.sock")
        .canonicalize()
        .ok()
        .and_then(|s| s.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/run"));
    let cases: Vec<(Value, &str)> = vec![
        (
            spec(json!({ "privileged": true })),
            "refused by host policy (no privileged containers)",
        ),
        (
            spec(json!({ "cap_add": ["SYS_ADMIN"] })),
            "refused by host policy (no added capabilities)",
        ),
        (
            spec(json!({ "network_mode": "host" })),
            "refused by host policy (no host network)",
        ),
        (
            spec(json!({ "pid_mode": "host" })),
            "refused by host policy (no host PID namespace)",
        ),
        (
            spec(json!({ "binds": [{ "source": "/", "target": "/host" }] })),
            "refused by host policy (never / or the Docker socket)",
        ),
        (
            spec(
                json!({ "binds": [{ "source": "/var/run/docker.sock", "target": "/var/run/docker.sock" }] }),
            ),
            "refused by host policy (never / or the Docker socket)",
        ),
        (
            spec(
                json!({ "binds": [{ "source": socket_dir.display().to_string(), "target": "/r" }] }),
            ),
            "refused by host policy (never / or the Docker socket)",
        ),
        (
            spec(json!({ "binds": [{ "source": "other", "target": "/o" }] })),
            "refused by host policy (bind mounts only inside granted bind_mounts)",
        ),
        (
            spec(json!({ "binds": [{ "source": "data/../other", "target": "/o" }] })),
            "refused by host policy (bind mounts only inside granted bind_mounts)",
        ),
        (
            spec(
                json!({ "ports": [{ "container_port": 80, "host_port": 0, "host_ip": "0.0.0.0" }] }),
            ),
            "refused by host policy (ports only on 127.0.0.1)",
        ),
        (
            spec(json!({ "labels": { "valero.project": "someone-else" } })),
            "refused by host policy (valero.* labels are the host's)",
        ),
        (
            json!({ "op": "build", "context": "other", "tag": "x" }),
            "refused by host policy (build contexts only from granted build_contexts)",
        ),
        (
            json!({ "op": "build", "context": "ctx", "dockerfile": "../pipeline.toml", "tag": "x" }),
            "must be a path inside the build context",
        ),
        (
            json!({ "op": "build", "context": "ctx", "dockerfile": "Dockerfile.secret", "tag": "secret" }),
            "secret.txt",
        ),
    ];
    let mut steps = vec![build_step()];
    steps.extend(cases.iter().map(|(s, _)| s.clone()));
    steps.push(json!({ "op": "list" }));
    let project = Project::new(&format!(
        "{}{}",
        header("containers"),
        stage_toml("ask", &Value::from(steps), &grant(&p), &[])
    ));
    write_context(&project);
    let (code, report, err) = run(&project);
    assert_eq!(code, 1, "{report:#}\n{err}");
    let r = results(&report, "ask", &err);
    assert!(r[0].0, "build failed: {}", r[0].1);
    for (i, (_, want)) in cases.iter().enumerate() {
        let (ok, answer) = &r[i + 1];
        assert!(!ok, "case {i} was allowed: {}", cases[i].0);
        let text = answer.as_str().unwrap();
        assert!(text.contains(want), "case {i}: want `{want}`, got: {text}");
    }
    // Nothing was created by the refused requests.
    assert_eq!(r.last().unwrap().1, json!([]), "{report:#}");
}

#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn another_projects_objects_are_out_of_reach() {
    let (a, b) = (project_name("a"), project_name("b"));
    let _cleanup = Cleanup(vec![a.clone(), b.clone()]);
    let mine = json!([
        build_step(),
        { "op": "network", "name": "net" },
        { "op": "create", "spec": { "name": "x", "image": "noop:1" } },
    ]);
    let other = format!("{a}-x");
    let theirs = json!([
        build_step(),
        { "op": "inspect", "name": other },
        { "op": "start", "name": other },
        { "op": "remove", "name": other, "force": true },
        { "op": "create", "spec": { "name": "y", "image": format!("{a}/noop:1") } },
        { "op": "create", "spec": { "name": "y", "image": "noop:1", "network": format!("{a}-net") } },
        { "op": "remove-project" },
    ]);
    let project = Project::new(&format!(
        "{}{}{}",
        header("containers"),
        stage_toml("mine", &mine, &grant(&a), &[]),
        stage_toml("theirs", &theirs, &grant(&b), &["mine"]),
    ));
    write_context(&project);
    let (_, report, err) = run(&project);
    let r = results(&report, "mine", &err);
    assert!(r.iter().all(|(ok, _)| *ok), "{report:#}");
    let r = results(&report, "theirs", &err);
    assert!(r[0].0, "{:?}", r[0]);
    for (i, (ok, answer)) in r[1..6].iter().enumerate() {
        assert!(!ok, "step {i} touched the other project: {answer}");
        let text = answer.as_str().unwrap();
        assert!(
            text.contains("refused by host policy (project scope)"),
            "step {i}: {text}"
        );
    }
    // Its own remove-project leaves the other project alone.
    assert!(r[6].0, "{:?}", r[6]);
    assert_eq!(r[6].1["containers"], json!([]));
    let still = docker(&["ps", "-aq", "--filter", &format!("name={other}")]);
    assert!(
        !still.trim().is_empty(),
        "the other project's container is gone"
    );
}

#[test]
fn a_stage_without_the_grant_cannot_load() {
    // No engine needed: the component is refused before it runs.
    let project = Project::new(&format!(
        "{}[stages.ask]\n{}with = {{ steps = [] }}\n",
        header("containers"),
        plugin_lines("wants-containers")
    ));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 4, "{report:#}\n{}", stderr(&out));
    let reason = stage(&report, "ask")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("containers"), "{reason}");
    // `containers = false` is the same as not granting it.
    std::fs::write(
        project.path().join("pipeline.toml"),
        format!(
            "{}[stages.ask]\n{}with = {{ steps = [] }}\ngrants = {{ containers = false }}\n",
            header("containers"),
            plugin_lines("wants-containers")
        ),
    )
    .unwrap();
    let (code, _, _) = project.run(&[]);
    assert_eq!(code, 4);
}

#[test]
fn container_grants_are_validated_with_line_and_column() {
    let project = Project::new(&format!(
        "{}[stages.a]\n{}grants = {{ containers = true }}\n\n\
         [stages.b]\n{}grants = {{ containers = {{ project = \"Bad Name\", build_contexts = [\"missing\"], bind_mounts = [\"/\"], extra = 1 }} }}\n\n\
         [stages.c]\n{}grants = {{ containers = {{ build_contexts = [] }} }}\n",
        header("containers"),
        plugin_lines("wants-containers"),
        plugin_lines("wants-containers"),
        plugin_lines("wants-containers"),
    ));
    let out = project.command(&["validate"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    for want in [
        "`containers` of stage `a` needs a project",
        "invalid container project name `Bad Name`",
        "`/` cannot be granted for bind mounts",
        "unknown key `extra` in `grants.containers` of stage `b`",
        "`grants.containers` of stage `c` has no `project`",
        "pipeline.toml:",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    // And a good one is described by `valero plan`.
    let project = Project::new(&format!(
        "{}[stages.a]\n{}grants = {{ containers = {{ project = \"neuroerp-dev\", build_contexts = [\".\"] }} }}\n",
        header("containers"),
        plugin_lines("wants-containers"),
    ));
    let out = project.command(&["plan"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("containers (project neuroerp-dev; build_contexts ["),
        "{text}"
    );
}
