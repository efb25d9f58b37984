//! The `build-images` and `deploy-compose` plugins, and the root pipeline's
//! `development` target, against a real Docker engine (only when
//! `VALERO_TEST_DOCKER=1` at build time, which `.ci/run` sets after starting
//! dockerd; otherwise they are listed as ignored, with the reason). Compose-file errors and the
//! load-time refusal need no engine and always run.
//!
//! The small projects use `FROM scratch` images of a static no-op program;
//! the `development` test builds the real fleet (musl, static) and publishes
//! it on 127.0.0.1:8101-8107.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::docker::{Cleanup, docker, noop_binary, project_name};
use common::{Project, copy_dir, header, stage, stderr};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A build context `ctx/` with the no-op program; its image sleeps by default.
/// The first layer names the project, so concurrent tests never share build
/// cache entries (which could hand a rebuild another, equal layer and so a
/// new image id).
fn write_context(project: &Project, name: &str) {
    let ctx = project.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(noop_binary(), ctx.join("noop")).unwrap();
    std::fs::write(ctx.join("project"), name).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY project /project\nCOPY noop /noop\nENTRYPOINT [\"/noop\"]\nCMD [\"sleep\"]\n",
    )
    .unwrap();
}

/// `images` (build-images for `services`, tag `<service>:1`) then `deploy`
/// (deploy-compose `up` of compose.yaml with `variables`).
fn pipeline(project: &str, services: &[&str], variables: &str, health_timeout_ms: u64) -> String {
    format!(
        r#"{header}
[stages.images]
plugin = "builtin:build-images"
with = {{ context = "ctx", version = "1", services = {services:?} }}
grants = {{ containers = {{ project = "{project}", build_contexts = ["ctx"] }} }}

[stages.deploy]
plugin = "builtin:deploy-compose"
needs = ["images"]
with = {{ action = "up", file = "compose.yaml", variables = {variables}, health_timeout_ms = {health_timeout_ms} }}
grants = {{ containers = {{ project = "{project}" }}, fs = {{ read = ["."] }} }}
"#,
        header = header("compose"),
    )
}

fn write(project: &Project, file: &str, text: &str) {
    std::fs::write(project.path().join(file), text).unwrap();
}

/// (service, container id, action) from the deploy stage's outputs.
fn deployed(report: &Value) -> Vec<(String, String, String)> {
    deployed_as(report, "deploy")
}

fn deployed_as(report: &Value, stage_name: &str) -> Vec<(String, String, String)> {
    let services = stage(report, stage_name)["outputs"]["services"]
        .as_object()
        .unwrap_or_else(|| panic!("no services in the outputs: {report:#}"));
    services
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                s["id"].as_str().unwrap().to_string(),
                s["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn check_message<'a>(report: &'a Value, stage_name: &str, check: &str) -> &'a str {
    stage(report, stage_name)["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == check))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_else(|| panic!("no check `{check}` in {stage_name}: {report:#}"))
}

#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn a_redeploy_changes_nothing_and_an_env_change_recreates_only_that_service() {
    let p = project_name("idem");
    let _cleanup = Cleanup(vec![p.clone()]);
    let compose = format!(
        r#"name: {p}
services:
  a:
    image: a:1
    ports: ["8080"]
    healthcheck:
      test: ["CMD", "/noop"]
      interval: 300ms
      retries: 20
  b:
    image: b:1
    environment:
      MODE: ${{B_MODE}}
    healthcheck:
      test: ["CMD", "/noop"]
      interval: 300ms
      retries: 20
  c:
    image: c:1
    depends_on:
      a: {{ condition: service_healthy }}
      b: {{ condition: service_healthy }}
    volumes: ["state:/state"]
volumes:
  state: {{}}
"#
    );
    let project = Project::new(&pipeline(
        &p,
        &["a", "b", "c"],
        r#"{ B_MODE = "one" }"#,
        60_000,
    ));
    write_context(&project, &p);
    write(&project, "compose.yaml", &compose);

    let (code, first, out) = project.run(&[]);
    assert_eq!(code, 0, "{first:#}\n{}", stderr(&out));
    let first = deployed(&first);
    assert!(first.iter().all(|(_, _, a)| a == "created"), "{first:?}");
    // Ids as the engine sees them, too.
    let engine_ids = || {
        let mut ids: Vec<String> = docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=valero.project={p}"),
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect();
        ids.sort();
        ids
    };
    let mut ids: Vec<String> = first.iter().map(|(_, id, _)| id.clone()).collect();
    ids.sort();
    assert_eq!(engine_ids(), ids);

    // Nothing changed: nothing recreated.
    let (code, second, out) = project.run(&[]);
    assert_eq!(code, 0, "{second:#}\n{}", stderr(&out));
    let second = deployed(&second);
    assert_eq!(
        second.iter().map(|(n, id, _)| (n, id)).collect::<Vec<_>>(),
        first.iter().map(|(n, id, _)| (n, id)).collect::<Vec<_>>(),
        "{second:?}"
    );
    assert!(
        second.iter().all(|(_, _, a)| a == "unchanged"),
        "{second:?}"
    );
    assert_eq!(engine_ids(), ids);

    // One service's environment changed: only that one is recreated.
    write(
        &project,
        "pipeline.toml",
        &pipeline(&p, &["a", "b", "c"], r#"{ B_MODE = "two" }"#, 60_000),
    );
    let (code, third, out) = project.run(&[]);
    assert_eq!(code, 0, "{third:#}\n{}", stderr(&out));
    let third = deployed(&third);
    for ((name, id, action), (_, old_id, _)) in third.iter().zip(&first) {
        if name == "b" {
            assert_ne!(id, old_id);
            assert_eq!(action, "recreated (configuration changed)");
        } else {
            assert_eq!(id, old_id, "{name} was recreated: {third:?}");
            assert_eq!(action, "unchanged");
        }
    }
    let env = docker(&["inspect", "-f", "{{json .Config.Env}}", &format!("{p}-b")]);
    assert!(env.contains("MODE=two"), "{env}");
}

#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn a_service_that_never_gets_healthy_fails_the_deploy_with_its_last_log_lines() {
    // Unhealthy: the engine gives up after its retries.
    let p = project_name("sick");
    let _cleanup = Cleanup(vec![p.clone()]);
    let compose = format!(
        r#"name: {p}
services:
  sick:
    image: sick:1
    healthcheck:
      test: ["CMD", "/noop", "false"]
      interval: 300ms
      timeout: 1s
      retries: 2
  after:
    image: after:1
    depends_on:
      sick: {{ condition: service_healthy }}
"#
    );
    let project = Project::new(&pipeline(&p, &["sick", "after"], "{}", 60_000));
    write_context(&project, &p);
    write(&project, "compose.yaml", &compose);
    let started = Instant::now();
    let (code, report, out) = project.run(&[]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{report:#}\n{}", stderr(&out));
    let deploy = stage(&report, "deploy");
    assert_eq!(deploy["status"], "failed", "{deploy:#}");
    let sick = check_message(&report, "deploy", "service sick");
    assert!(sick.contains("unhealthy"), "{sick}");
    assert!(sick.contains("noop: up, waiting for SIGTERM"), "{sick}");
    // Its dependent never starts, and says why.
    let after = check_message(&report, "deploy", "service after");
    assert!(
        after.contains("dependency sick (healthy) not met"),
        "{after}"
    );
    assert!(took < Duration::from_secs(40), "took {took:?}");

    // Never healthy within the deadline (the engine would keep trying).
    let p = project_name("slow");
    let _cleanup_slow = Cleanup(vec![p.clone()]);
    let compose = format!(
        r#"name: {p}
services:
  slow:
    image: slow:1
    healthcheck:
      test: ["CMD", "/noop", "false"]
      interval: 1s
      retries: 1000
"#
    );
    let project = Project::new(&pipeline(&p, &["slow"], "{}", 3_000));
    write_context(&project, &p);
    write(&project, "compose.yaml", &compose);
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{report:#}\n{}", stderr(&out));
    let slow = check_message(&report, "deploy", "service slow");
    assert!(slow.contains("not healthy within 3000 ms"), "{slow}");
    assert!(slow.contains("noop: up, waiting for SIGTERM"), "{slow}");
    let ms = stage(&report, "deploy")["duration_ms"]
        .as_u64()
        .unwrap_or(0);
    assert!(ms < 10_000, "the deploy took {ms} ms with a 3 s deadline");
}

#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn what_host_policy_forbids_is_refused_through_the_compose_file_too() {
    let p = project_name("pol");
    let _cleanup = Cleanup(vec![p.clone()]);
    for (service_lines, rule) in [
        ("privileged: true", "(no privileged containers)"),
        ("volumes: [\"/:/host\"]", "is `/`"),
        (
            "volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]",
            "holds the Docker socket",
        ),
        (
            "ports: [\"0.0.0.0:8080:8080\"]",
            "(ports only on 127.0.0.1)",
        ),
    ] {
        let compose =
            format!("name: {p}\nservices:\n  bad:\n    image: bad:1\n    {service_lines}\n");
        let project = Project::new(&pipeline(&p, &["bad"], "{}", 20_000));
        write_context(&project, &p);
        write(&project, "compose.yaml", &compose);
        let (code, report, out) = project.run(&[]);
        assert_eq!(code, 1, "{service_lines}: {report:#}\n{}", stderr(&out));
        let bad = check_message(&report, "deploy", "service bad");
        assert!(
            bad.contains("refused by host policy") && bad.contains(rule),
            "{service_lines}: {bad}"
        );
        // …pointing at the line that asked for it.
        assert!(bad.starts_with("compose.yaml:5:5: "), "{bad}");
        let left = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=valero.project={p}"),
        ]);
        assert_eq!(left.trim(), "", "{service_lines}: a container was created");
    }
}

#[test]
fn an_unsupported_compose_key_is_reported_with_its_line_and_column() {
    let project = Project::new(&format!(
        r#"{}
[stages.deploy]
plugin = "builtin:deploy-compose"
with = {{ action = "up", file = "compose.yaml" }}
grants = {{ containers = {{ project = "keys" }}, fs = {{ read = ["."] }} }}
"#,
        header("compose-keys")
    ));
    write(
        &project,
        "compose.yaml",
        "services:\n  web:\n    image: web:1\n    container_name: fixed\n",
    );
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{report:#}\n{}", stderr(&out));
    let summary = stage(&report, "deploy")["summary"].as_str().unwrap_or("");
    assert!(summary.contains("compose.yaml:4:5"), "{summary}");
    assert!(summary.contains("container_name"), "{summary}");

    write(
        &project,
        "compose.yaml",
        "services:\n  web:\n    image: web:1\n    enviroment:\n      A: b\n",
    );
    let (code, report, _) = project.run(&[]);
    assert_eq!(code, 1);
    let summary = stage(&report, "deploy")["summary"].as_str().unwrap_or("");
    assert!(summary.contains("compose.yaml:4:5"), "{summary}");
    assert!(summary.contains("environment"), "{summary}");
}

#[test]
fn deploy_compose_without_the_containers_grant_cannot_load() {
    let project = Project::new(&format!(
        "{}[stages.deploy]\nplugin = \"builtin:deploy-compose\"\nwith = {{ action = \"down\" }}\n",
        header("compose-nogrant")
    ));
    let (code, _, out) = project.run(&[]);
    let err = stderr(&out);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("containers"), "{err}");
}

/// The root pipeline's `development` target, run from a copy of the files it
/// reads (the build job's script builds in this repository): once keeping
/// the deployment, then again from the same sources, which must rebuild the
/// same images, recreate no container, verify and clean up everything.
#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn the_development_target_builds_deploys_verifies_and_leaves_nothing_behind() {
    let project_label = "label=valero.project=neuroerp-dev";
    let _cleanup = Cleanup(vec!["neuroerp-dev".into()]);
    let script = repo().join("examples/neuroerp/docker/prepare-context.sh");
    let text = std::fs::read_to_string(repo().join("pipeline.toml")).unwrap();
    let text = text.replace(
        "\"examples/neuroerp/docker/prepare-context.sh\"",
        &format!("{:?}", script.display().to_string()),
    );
    let project = Project::new(&text);
    for dir in ["examples/neuroerp/api", "examples/neuroerp/e2e"] {
        copy_dir(&repo(), project.path(), dir);
    }
    std::fs::copy(
        repo().join("examples/neuroerp/compose.yaml"),
        project.path().join("examples/neuroerp/compose.yaml"),
    )
    .unwrap();

    // First run: build, deploy, verify; keep the deployment.
    let (code, report, out) =
        project.run(&["--target", "development", "--skip", "source,compose-down"]);
    assert_eq!(code, 0, "{report:#}\n{}", stderr(&out));
    let images = stage(&report, "images");
    assert_eq!(images["checks"].as_array().unwrap().len(), 7, "{images:#}");
    let deploy = stage(&report, "deploy-compose");
    assert_eq!(deploy["checks"].as_array().unwrap().len(), 7, "{deploy:#}");
    for name in ["build", "images", "deploy-compose", "health", "api", "e2e"] {
        assert_eq!(
            stage(&report, name)["status"],
            "passed",
            "{:#}",
            stage(&report, name)
        );
    }
    let first = deployed_as(&report, "deploy-compose");
    assert_eq!(first.len(), 7);
    assert!(first.iter().all(|(_, _, a)| a == "created"), "{first:?}");
    let image_ids = images["outputs"]["images"].clone();
    assert_eq!(
        image_ids["fibu-service"]["tag"],
        "neuroerp-dev/fibu-service:1.0.0"
    );
    // The OCI labels the images carry.
    let labels = docker(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        "neuroerp-dev/fibu-service:1.0.0",
    ]);
    let labels: Value = serde_json::from_str(&labels).unwrap_or(Value::Null);
    assert_eq!(
        labels["org.opencontainers.image.version"], "1.0.0",
        "{labels}"
    );
    assert_eq!(labels["org.opencontainers.image.title"], "fibu-service");
    for key in ["revision", "created"] {
        let value = labels[format!("org.opencontainers.image.{key}")]
            .as_str()
            .unwrap_or("");
        assert!(!value.is_empty(), "{key}: {labels}");
    }

    // Second run from the same sources: the images come out the same, so the
    // deploy recreates no container; then verify again and clean up.
    let (code, report, out) = project.run(&["--target", "development", "--skip", "source"]);
    assert_eq!(code, 0, "{report:#}\n{}", stderr(&out));
    assert_eq!(stage(&report, "images")["outputs"]["images"], image_ids);
    let second = deployed_as(&report, "deploy-compose");
    assert_eq!(
        second,
        first
            .iter()
            .map(|(n, id, _)| (n.clone(), id.clone(), "unchanged".to_string()))
            .collect::<Vec<_>>()
    );
    for name in ["health", "api", "e2e", "compose-down"] {
        assert_eq!(
            stage(&report, name)["status"],
            "passed",
            "{:#}",
            stage(&report, name)
        );
    }
    // Nothing of the project is left: containers, networks, volumes, images.
    for list in [
        &["ps", "-aq"][..],
        &["network", "ls", "-q"],
        &["volume", "ls", "-q"],
        &["image", "ls", "-q"],
    ] {
        let left = docker(&[list, &["--filter", project_label]].concat());
        assert_eq!(left.trim(), "", "docker {list:?} still lists {left}");
    }
}

/// Crash recovery on Docker: a run killed after its deploy resumes reusing
/// `images` and `deploy` once the engine shows their image and container
/// still in place; a removed container makes `deploy` run again; and what a
/// killed run left is reported by the next run and removed by `valero cleanup`.
#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn a_killed_run_reuses_running_containers_after_checking_them_and_redeploys_gone_ones() {
    let p = project_name("resume");
    let _cleanup = Cleanup(vec![p.clone()]);
    let tk = common::plugin_lines("testkit");
    let text = format!(
        "{}[stages.after]\n{tk}needs = [\"deploy\"]\nwith = {{ behavior = \"pass\" }}\n",
        pipeline(&p, &["a"], "{}", 60_000)
    );
    let project = Project::new(&text);
    write_context(&project, &p);
    write(
        &project,
        "compose.yaml",
        &format!("name: {p}\nservices:\n  a:\n    image: a:1\n"),
    );
    // Events: run_started, then started/attempt/finished of images and deploy;
    // killed right after `after` starts (event 8).
    let runs = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(project.path().join(".valero/runs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let kill_after = |n: &str| {
        let before = runs();
        let status = project
            .command(&["run", "--progress", "plain"])
            .env("VALERO_TEST_KILL_AFTER_EVENT", n)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        runs().difference(&before).next().unwrap().clone()
    };
    let id = kill_after("8");
    let reused = |report: &Value, name: &str| stage(report, name)["resume"]["reused"] == true;

    // Containers still up: reused after checking.
    let (code, report, out) = project.run(&["--resume", &id]);
    assert_eq!(code, 0, "{report:#}\n{}", stderr(&out));
    assert!(
        reused(&report, "images") && reused(&report, "deploy"),
        "{report:#}"
    );
    let why = stage(&report, "deploy")["resume"]["why"].as_str().unwrap();
    assert!(why.contains("checked and are still in place"), "{why}");
    assert!(!reused(&report, "after"));
    let effects = &stage(&report, "deploy")["effects"];
    assert_eq!(effects[0]["kind"], "container", "{effects:#}");
    assert_eq!(effects[0]["lifetime"], "persistent");

    // The container gone: deploy runs again (and what needs it), images do not.
    docker(&["rm", "-f", &format!("{p}-a")]);
    let (code, report, out) = project.run(&["--resume", &id]);
    assert_eq!(code, 0, "{report:#}\n{}", stderr(&out));
    assert!(reused(&report, "images"), "{report:#}");
    let deploy = stage(&report, "deploy");
    assert_eq!(deploy["resume"]["reused"], false);
    assert!(
        deploy["resume"]["why"]
            .as_str()
            .unwrap()
            .contains(&format!("container `{p}-a` is gone")),
        "{deploy:#}"
    );
    assert_eq!(deployed(&report)[0].2, "created");
    assert!(!reused(&report, "after"));

    // A killed run's leftovers: the next run says so, `valero cleanup` removes them.
    let killed = kill_after("8");
    let (code, _, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{killed}, was interrupted and left"))
            && err.contains(&format!("container `{p}-a`"))
            && err.contains(&format!("valero cleanup {killed}")),
        "{err}"
    );
    let killed = kill_after("8");
    let out = project.command(&["cleanup", &killed]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("container `{p}-a`: removed")),
        "{said}"
    );
    let filter = format!("label=valero.project={p}");
    assert_eq!(docker(&["ps", "-aq", "--filter", &filter]).trim(), "");
    assert_eq!(
        docker(&["image", "ls", "-q", "--filter", &filter]).trim(),
        ""
    );
}
