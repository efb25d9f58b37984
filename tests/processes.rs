//! The `processes` capability: a granted stage starts and stops only what
//! the target declares; ports in use are clear errors; nothing the run
//! started outlives it. The declared service here is Python's http.server,
//! a real process listening on loopback.

mod common;

use std::net::TcpListener;

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pipeline whose `local` target declares two web services.
fn pipeline(a: u16, b: u16, stages: &str) -> String {
    format!(
        "[pipeline]\nname = \"procs\"\ndefault_target = \"local\"\ntimeout = \"2m\"\n\n\
         [targets.local.services.web-a]\nprogram = \"python3\"\nargs = [\"-m\", \"http.server\", \"{a}\", \"--bind\", \"127.0.0.1\"]\nport = {a}\nready = \"http://127.0.0.1:{a}/\"\n\n\
         [targets.local.services.web-b]\nprogram = \"python3\"\nargs = [\"-m\", \"http.server\", \"{b}\", \"--bind\", \"127.0.0.1\"]\nport = {b}\nready = \"http://127.0.0.1:{b}/\"\nneeds = [\"web-a\"]\n\n\
         [targets.local.jobs.hello]\nprogram = \"sh\"\nargs = [\"-c\", \"echo built $GREETING\"]\nenv = {{ GREETING = \"{{service}}-ok\" }}\n\n\
         {stages}"
    )
}

const DEPLOY: &str = "[stages.build]\nplugin = \"builtin:deploy-local\"\nwith = { action = \"build\" }\ngrants = { processes = true }\n\n\
    [stages.deploy]\nplugin = \"builtin:deploy-local\"\nneeds = [\"build\"]\nwith = { action = \"deploy\", ready_timeout_ms = 15000 }\ngrants = { processes = true, http = [\"http://127.0.0.1:*\"] }\n\n";

const CLEANUP: &str = "[stages.cleanup]\nplugin = \"builtin:deploy-local\"\nneeds = [\"deploy\", \"probe\"]\nalways = true\nwith = { action = \"stop\" }\ngrants = { processes = true }\n";

/// The directory of the project's one run.
fn only_run_dir(project: &Project) -> std::path::PathBuf {
    std::fs::read_dir(project.path().join(".valero/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn deploy_local_starts_in_order_waits_ready_and_cleanup_stops() {
    let (a, b) = (free_port(), free_port());
    let probe = format!(
        "[stages.probe]\nplugin = \"builtin:http-probe\"\nneeds = [\"deploy\"]\nwith = {{ urls = [\"http://127.0.0.1:{a}/\", \"http://127.0.0.1:{b}/\"] }}\ngrants = {{ http = [\"http://127.0.0.1:*\"] }}\n\n"
    );
    let project = Project::new(&pipeline(a, b, &format!("{DEPLOY}{probe}{CLEANUP}")));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let deploy = stage(&report, "deploy");
    let checks: Vec<&str> = deploy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["start web-a", "start web-b"], "dependency order");
    assert_eq!(deploy["outputs"]["services"]["web-b"]["port"], b);
    assert_eq!(stage(&report, "probe")["status"], "passed");
    assert_eq!(stage(&report, "cleanup")["status"], "passed");
    // The job ran the declared command with the declared env, logged in the run dir.
    let run_dir = only_run_dir(&project);
    let job_log = std::fs::read_to_string(run_dir.join("jobs/hello.log")).unwrap();
    assert_eq!(job_log.trim(), "built hello-ok");
    assert!(run_dir.join("services/web-a.log").exists());
    assert!(!listening(a) && !listening(b), "services left running");
}

#[test]
fn an_occupied_port_names_service_and_port_and_cleanup_still_stops() {
    let (a, b) = (free_port(), free_port());
    let _squatter = TcpListener::bind(("127.0.0.1", b)).unwrap();
    let project = Project::new(&pipeline(
        a,
        b,
        &format!("{DEPLOY}{}", CLEANUP.replace(", \"probe\"", "")),
    ));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    let reason = stage(&report, "deploy")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("web-b")
            && reason.contains(&format!("port {b}"))
            && reason.contains("already in use"),
        "{reason}"
    );
    assert_eq!(stage(&report, "cleanup")["status"], "passed");
    assert!(
        !listening(a),
        "web-a (started before the failure) is still running"
    );
}

#[test]
fn services_are_stopped_when_the_run_ends_even_without_cleanup() {
    let (a, b) = (free_port(), free_port());
    let failing = "[stages.verify]\nplugin = \"builtin:http-probe\"\nneeds = [\"deploy\"]\nwith = { urls = [\"http://127.0.0.1:1/\"], timeout_ms = 200 }\ngrants = { http = [\"http://127.0.0.1:*\"] }\n";
    let project = Project::new(&pipeline(a, b, &format!("{DEPLOY}{failing}")));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    assert_eq!(stage(&report, "deploy")["status"], "passed");
    assert!(!listening(a) && !listening(b), "services outlived the run");
}

#[test]
fn undeclared_programs_are_refused() {
    let (a, b) = (free_port(), free_port());
    let wants = plugin_lines("wants-processes");
    let stages = format!(
        "[stages.sneaky]\n{wants}with = {{ start = \"/bin/sh\" }}\ngrants = {{ processes = true }}\n\n\
         [stages.declared]\n{wants}with = {{ start = \"web-a\" }}\ngrants = {{ processes = true }}\n"
    );
    let project = Project::new(&pipeline(a, b, &stages));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    let sneaky = stage(&report, "sneaky");
    assert_eq!(sneaky["status"], "failed");
    let msg = sneaky["checks"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("`/bin/sh` is not a service of target `local`")
            && msg.contains("web-a, web-b"),
        "{msg}"
    );
    // The control: a declared service does start (and is stopped at the end).
    assert_eq!(stage(&report, "declared")["status"], "passed", "{report:#}");
    assert!(!listening(a));
}

/// A job still running when its stage times out is stopped with everything
/// it started: the stage's end drops the job's future, and the whole process
/// group goes, not only the job's own process.
#[test]
fn a_job_cut_off_by_its_stage_timeout_leaves_none_of_its_processes() {
    let (a, b) = (free_port(), free_port());
    let slow_job = "[targets.local.jobs.slow]\nprogram = \"sh\"\n\
        args = [\"-c\", \"sleep 300 & echo $! > \\\"$PIDFILE\\\"; wait\"]\n\
        env = { PIDFILE = \"{run_dir}/grandchild.pid\" }\ntimeout = \"5m\"\n\n";
    let stages = "[stages.build]\nplugin = \"builtin:deploy-local\"\nwith = { action = \"build\" }\n\
        grants = { processes = true }\ntimeout = \"3s\"\n";
    let project = Project::new(&pipeline(a, b, &format!("{slow_job}{stages}")));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    assert_eq!(
        stage(&report, "build")["attempts"][0]["outcome"],
        "timed_out",
        "{report:#}"
    );
    let run_dir = only_run_dir(&project);
    let pid = std::fs::read_to_string(run_dir.join("grandchild.pid"))
        .expect("the job started its background process");
    let pid: u32 = pid.trim().parse().unwrap();
    // Gone, or a zombie waiting for init to reap it: not running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
    };
    while running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let still = running();
    if still {
        // SAFETY: kill(2) of the process this test made, so it does not linger.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert!(
        !still,
        "the job's background process {pid} outlived its stage"
    );
}
