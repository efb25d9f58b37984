//! Faults of the world around a stage: the Docker engine or the database
//! going away while a stage uses it. The runner must notice, fail the stage
//! with a message that says what went away, finish the run and its records
//! (nothing hangs, nothing is lost), and leave what the stage made
//! recoverable once the engine is back (`valero cleanup`).
//!
//! The part going away is a relay the test puts between the runner and the
//! real engine or server (a Unix socket for Docker, a TCP port on loopback
//! for PostgreSQL), so the test can cut every connection at a moment of its
//! choosing without stopping the engine other tests use.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::databases::{pg_strings, postgres_url};
use common::docker::{Cleanup, docker, noop_binary, project_name};
use common::{Project, header, plugin_lines, stage, stderr};
use serde_json::{Value, json};

/// A stream the relay can copy and cut.
trait Stream: Read + Write + Send + Sized + 'static {
    fn clone_stream(&self) -> std::io::Result<Self>;
    fn cut(&self);
}

impl Stream for TcpStream {
    fn clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn cut(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

impl Stream for UnixStream {
    fn clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn cut(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// Cuts one relayed connection (both directions).
type Cutter = Box<dyn Fn() + Send>;

/// Copies connections to an upstream until [`Relay::cut`]: then every open
/// connection is shut down and new ones are refused (the listener is gone).
struct Relay {
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<Cutter>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Relay {
    fn start<S: Stream>(
        mut accept: impl FnMut() -> std::io::Result<Option<S>> + Send + 'static,
        connect: impl Fn() -> std::io::Result<S> + Send + 'static,
    ) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<Cutter>>> = Arc::default();
        let acceptor = {
            let (stop, open) = (stop.clone(), open.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match accept() {
                        Ok(Some(c)) => c,
                        Ok(None) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        Err(_) => break,
                    };
                    let Ok(server) = connect() else { continue };
                    let pipes = [
                        (client.clone_stream(), server.clone_stream()),
                        (server.clone_stream(), client.clone_stream()),
                    ];
                    let mut guard = open.lock().unwrap();
                    for (from, to) in pipes {
                        let (Ok(mut from), Ok(mut to)) = (from, to) else {
                            continue;
                        };
                        if let (Ok(a), Ok(b)) = (from.clone_stream(), to.clone_stream()) {
                            guard.push(Box::new(move || {
                                a.cut();
                                b.cut();
                            }));
                        }
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            to.cut();
                        });
                    }
                }
                // Dropping `accept` closes the listener: new connections are refused.
            })
        };
        Relay {
            stop,
            open,
            acceptor: Some(acceptor),
        }
    }

    /// Every connection through the relay breaks, and no new one is accepted.
    fn cut(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for cut in self.open.lock().unwrap().drain(..) {
            cut();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

fn tcp_relay(upstream: String) -> (Relay, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let relay = Relay::start(
        move || match listener.accept() {
            Ok((s, _)) => s.set_nonblocking(false).map(|()| Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        },
        move || TcpStream::connect(&upstream),
    );
    (relay, addr)
}

fn unix_relay(path: &Path, upstream: String) -> Relay {
    let listener = UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    Relay::start(
        move || match listener.accept() {
            Ok((s, _)) => s.set_nonblocking(false).map(|()| Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        },
        move || UnixStream::connect(&upstream),
    )
}

/// `valero run` of the project in the background, writing report.json.
fn spawn_run(project: &Project, env: &[(&str, &str)]) -> Child {
    let mut cmd = project.command(&["run", "--progress", "plain", "--report", "json=report.json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run valero")
}

/// Waits for `what` to hold, or fails the test after `limit`.
fn wait_until(what: &str, limit: Duration, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !holds() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the run to end (the test fails if it hangs); returns its exit
/// code, its report and its stderr.
fn finish(project: &Project, mut child: Child, limit: Duration) -> (i32, Value, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within {limit:?} of the fault");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let report = std::fs::read_to_string(project.path().join("report.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    (status.code().unwrap_or(-1), report, err)
}

/// The run's records end with its outcome, and `runs show` reads them.
fn records_are_complete(project: &Project, run_id: &str) {
    let events = std::fs::read_to_string(
        project
            .path()
            .join(".valero/runs")
            .join(run_id)
            .join("events.jsonl"),
    )
    .unwrap();
    let last: Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "run_finished", "{events}");
    let show = project.command(&["runs", "show", run_id]).output().unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
}

#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn the_database_going_away_mid_statement_fails_the_stage_and_finishes_the_run() {
    let pg = postgres_url();
    // postgres://user:password@HOST:PORT/db: the relay stands in for HOST:PORT.
    let at = pg.find('@').expect("a PostgreSQL URL with a user") + 1;
    let end = pg[at..].find('/').map_or(pg.len(), |i| at + i);
    let (mut relay, addr) = tcp_relay(pg[at..end].to_string());
    let through_relay = format!("{}{addr}{}", &pg[..at], &pg[end..]);

    let marker = format!("fault_{}", std::process::id());
    let sleep = format!("SELECT pg_sleep(60) AS {marker}");
    let project = Project::new(&common::databases::db_pipeline(
        &[("pg", &through_relay)],
        &format!(
            "[stages.ask]\n{}with = {{ database = \"pg\", sql = [{sleep:?}, \"SELECT 1 AS one\"] }}\n\
             grants = {{ databases = true }}\ntimeout = \"3m\"\n",
            plugin_lines("wants-databases")
        ),
    ));
    let child = spawn_run(&project, &[]);
    let running = || {
        !pg_strings(
            &pg,
            &format!(
                "SELECT pid::text FROM pg_stat_activity WHERE query LIKE '%{marker}%' \
                 AND pid <> pg_backend_pid()"
            ),
        )
        .is_empty()
    };
    wait_until(
        "the statement running on the server",
        Duration::from_secs(60),
        running,
    );
    relay.cut();
    let cut = Instant::now();
    let (code, report, err) = finish(&project, child, Duration::from_secs(30));

    // The stage failed on the lost connection, well before its statement's 60 s.
    assert!(cut.elapsed() < Duration::from_secs(30));
    assert_eq!(code, 1, "{report:#}\n{err}");
    let ask = stage(&report, "ask");
    assert_eq!(ask["status"], "failed", "{ask:#}");
    let results = ask["outputs"]["results"].as_array().unwrap();
    for r in results {
        assert_eq!(r["ok"], false, "{r}");
    }
    let lost = results[0]["answer"].as_str().unwrap();
    assert!(
        lost.contains("database `pg`") && lost.contains("connection") && lost.contains("lost"),
        "{lost}"
    );
    assert!(lost.contains("call `connect` again"), "{lost}");
    let again = results[1]["answer"].as_str().unwrap();
    assert!(again.contains("database `pg` is not connected"), "{again}");
    // Where the database is stays with the host.
    assert!(!report.to_string().contains(&addr), "{report:#}");
    records_are_complete(&project, report["run_id"].as_str().unwrap());
}

#[test]
#[cfg_attr(
    not(valero_test_docker),
    ignore = "needs a Docker engine: set VALERO_TEST_DOCKER=1 (.ci/run does)"
)]
fn the_docker_engine_going_away_mid_stage_fails_the_stage_and_cleanup_recovers() {
    let p = project_name("gone");
    let _cleanup = Cleanup(vec![p.clone()]);
    let upstream = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string());
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("docker.sock");
    let mut relay = unix_relay(&socket, upstream);

    let steps = json!([
        { "op": "build", "context": "ctx", "tag": "noop:1" },
        { "op": "create", "spec": { "name": "app", "image": "noop:1", "command": ["/noop", "sleep"] } },
        { "op": "start", "name": "app" },
        // Never true: the stage polls the engine until the engine is gone.
        { "op": "wait", "name": "app", "state": "exited", "timeout_ms": 120000 },
    ]);
    let with = toml::to_string(&json!({ "steps": steps }))
        .unwrap()
        .replace("[[steps", "[[stages.up.with.steps")
        .replace("[steps", "[stages.up.with.steps");
    let project = Project::new(&format!(
        "{}[stages.up]\n{}grants = {{ containers = {{ project = {p:?}, build_contexts = [\"ctx\"] }} }}\n\
         timeout = \"3m\"\n\n[stages.up.with]\n{with}\n",
        header("containers"),
        plugin_lines("wants-containers"),
    ));
    let ctx = project.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(noop_binary(), ctx.join("noop")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY noop /noop\nCMD [\"/noop\"]\n",
    )
    .unwrap();

    let docker_host = format!("unix://{}", socket.display());
    let child = spawn_run(&project, &[("DOCKER_HOST", &docker_host)]);
    let app = format!("{p}-app");
    wait_until("the container running", Duration::from_secs(120), || {
        docker(&["inspect", "-f", "{{.State.Running}}", &app]).trim() == "true"
    });
    relay.cut();
    let (code, report, err) = finish(&project, child, Duration::from_secs(30));

    assert_eq!(code, 1, "{report:#}\n{err}");
    let up = stage(&report, "up");
    assert_eq!(up["status"], "failed", "{up:#}");
    let wait = &up["outputs"]["results"][3];
    assert_eq!(wait["ok"], false, "{wait}");
    let answer = wait["answer"].as_str().unwrap();
    assert!(answer.contains("Docker engine"), "{answer}");
    // What the stage made is in its records, with its lifetime.
    let effects = up["effects"].as_array().unwrap();
    assert!(
        effects.iter().any(|e| e["kind"] == "container"
            && e["name"] == app.as_str()
            && e["lifetime"] == "persistent"),
        "{up:#}"
    );
    let run_id = report["run_id"].as_str().unwrap();
    records_are_complete(&project, run_id);

    // With the engine reachable again, `valero cleanup` removes what the run left.
    let out = project.command(&["cleanup", run_id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("the container removed", Duration::from_secs(30), || {
        docker(&["ps", "-aq", "--filter", &format!("name=^{app}$")])
            .trim()
            .is_empty()
    });
}
