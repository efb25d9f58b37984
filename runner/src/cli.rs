//! The `valero` command line.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::Shape;
use crate::engine::shape::{capability_of, grant_example};
use crate::exit::{EXIT_CODES_HELP, Exit};
use crate::pipeline::Digest;
use crate::records::RunState;
use crate::report::{RunReport, StageStatus};
use crate::run::{self, RunOptions};
use crate::scheduler::Interrupt;
use crate::terminal::{self, ProgressMode, Verbosity};

#[derive(Parser, Debug)]
#[command(
    name = "valero",
    version,
    about = "Run deployment pipelines whose stages are sandboxed WebAssembly components",
    long_about = "Run deployment pipelines whose stages are sandboxed WebAssembly components.\n\n\
valero reads pipeline.toml, loads each stage's plugin (a WASI 0.2 component), \
and runs the stages as a DAG. A stage can do nothing its grants do not allow: \
no files, network, environment or host capability unless pipeline.toml says so.",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Less output: only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More output (-v: plugin output and debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the pipeline on a target.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Check pipeline.toml (syntax, keys, needs, cycles, plugin files and pins) without running it.
    Validate {
        /// Path to the pipeline file.
        #[arg(default_value = "pipeline.toml")]
        pipeline: PathBuf,
    },
    /// Show what a run would do: stages in order, what each needs and is
    /// granted; on a target with a Kubernetes cluster also what its deploy
    /// would change there (a server-side dry run: created / changed fields /
    /// unchanged per object), with no change to the cluster.
    Plan {
        #[arg(default_value = "pipeline.toml")]
        pipeline: PathBuf,
        /// Target to plan for (default: the pipeline's default_target).
        #[arg(long, short)]
        target: Option<String>,
        /// Only the stage plan: do not contact the cluster.
        #[arg(long)]
        offline: bool,
    },
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List and show recorded runs (`.valero/runs/`).
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Remove what an interrupted run left behind that outlives the runner:
    /// the containers and images its stages recorded (only those still
    /// carrying their project's label).
    Cleanup {
        /// The run id (from `valero runs list`).
        run_id: String,
        /// Directory holding `runs/` [default: .valero next to ./pipeline.toml].
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// List recorded runs, newest first.
    List {
        /// Directory holding `runs/` [default: .valero next to ./pipeline.toml].
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Show one run's summary (or its JSON report).
    Show {
        /// The run id (from `valero runs list`).
        run_id: String,
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Print the JSON report instead of the summary.
        #[arg(long)]
        json: bool,
    },
}

/// `--report FORMAT=PATH`.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    pub format: ReportFormat,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Junit,
    Markdown,
}

fn parse_report(s: &str) -> Result<ReportSpec, String> {
    let (format, path) = s
        .split_once('=')
        .ok_or_else(|| format!("expected FORMAT=PATH (json, junit or markdown), got `{s}`"))?;
    let format = match format {
        "json" => ReportFormat::Json,
        "junit" => ReportFormat::Junit,
        "markdown" | "md" => ReportFormat::Markdown,
        other => {
            return Err(format!(
                "unknown report format `{other}`: use json, junit or markdown"
            ));
        }
    };
    if path.is_empty() {
        return Err("the report path is empty".into());
    }
    Ok(ReportSpec {
        format,
        path: PathBuf::from(path),
    })
}

#[derive(Parser, Debug)]
pub struct RunArgs {
    /// Path to the pipeline file.
    #[arg(default_value = "pipeline.toml")]
    pub pipeline: PathBuf,
    /// Target environment (default: the pipeline's default_target).
    #[arg(long, short)]
    pub target: Option<String>,
    /// Maximum number of stages running at once.
    #[arg(long, short, default_value_t = default_jobs())]
    pub jobs: usize,
    /// Compile-cache directory [default: $VALERO_CACHE_DIR, $XDG_CACHE_HOME/valero or ~/.cache/valero].
    #[arg(long, conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every plugin; neither read nor write the compile cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Wall time for compiling one plugin (e.g. 30s, 5m); a plugin that takes longer fails its stages.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub compile_timeout: std::time::Duration,
    /// Directory for run records [default: .valero next to the pipeline file].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Write a report: json=PATH (schema: docs/report.schema.json), junit=PATH, markdown=PATH. Repeatable.
    #[arg(long, value_name = "FORMAT=PATH", value_parser = parse_report)]
    pub report: Vec<ReportSpec>,
    /// Run only these stages (comma-separated or repeated); needs outside the selection are dropped.
    #[arg(long, value_delimiter = ',', value_name = "STAGE")]
    pub only: Vec<String>,
    /// Do not run these stages; stages that need them run without their outputs.
    #[arg(long, value_delimiter = ',', value_name = "STAGE")]
    pub skip: Vec<String>,
    /// Continue an earlier run: stages that passed with unchanged plugin, config and inputs are
    /// reused; failed, skipped, cancelled and unfinished ones run again.
    #[arg(long, value_name = "RUN_ID")]
    pub resume: Option<String>,
    /// Progress display on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Show a component's digest, exports and imports (the capabilities it asks for).
    Inspect {
        /// A .wasm file, or builtin:NAME.
        plugin: String,
    },
    /// List the builtin plugins and their digests.
    List,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().max(4))
}

/// Parses the command line, runs the command, returns the exit code.
pub fn main() -> Exit {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Exit::Success
                }
                _ => Exit::Invalid,
            };
        }
    };
    // Live bars only where they help: a terminal, and not when logs are JSON
    // (unless asked for explicitly). Logging and the observer use this one decision.
    let tty = matches!(&cli.command, Command::Run(a)
        if a.progress.is_tty()
        && (matches!(cli.log_format, LogFormat::Text) || a.progress == ProgressMode::Tty));
    init_logging(&cli, tty);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Internal;
        }
    };
    rt.block_on(dispatch(cli, tty))
}

fn init_logging(cli: &Cli, tty: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        // The bars already show what INFO lines would say.
        (false, 0) if tty => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    // Our own crate at the chosen level; dependencies only when they warn.
    let filter = EnvFilter::try_from_env("VALERO_LOG").unwrap_or_else(|_| {
        // wasi-http logs every refused connection of a guest at WARN; the
        // guest gets the error and reports it, so that is noise here.
        EnvFilter::new(format!("warn,wasmtime_wasi_http=error,valero={level}"))
    });
    // Log lines go above the live progress bars when they are shown.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(terminal::tracing_writer)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .init(),
    }
}

async fn dispatch(cli: Cli, tty: bool) -> Exit {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match cli.command {
        Command::Run(args) => {
            let mode = if tty {
                ProgressMode::Tty
            } else {
                ProgressMode::Plain
            };
            cmd_run(args, terminal::observer(mode, verbosity)).await
        }
        Command::Validate { pipeline } => {
            match run::load_pipeline(&pipeline).and_then(|p| run::check_plugins(&p).map(|()| p)) {
                Ok(p) => {
                    println!(
                        "{}: ok (pipeline `{}`, {} stages, {} targets)",
                        pipeline.display(),
                        p.name,
                        p.stages.len(),
                        p.targets.len()
                    );
                    Exit::Success
                }
                Err(e) => fail(e),
            }
        }
        Command::Plan {
            pipeline,
            target,
            offline,
        } => {
            let result = run::load_pipeline(&pipeline)
                .and_then(|p| run::plan_for(&p, target.as_deref()).map(|plan| (p, plan)));
            match result {
                Ok((p, plan)) => {
                    print!("{}", crate::describe::plan(&p, &plan));
                    if offline {
                        Exit::Success
                    } else {
                        cmd_dry_run(pipeline, &p, &plan).await
                    }
                }
                Err(e) => fail(e),
            }
        }
        Command::Plugin(PluginCommand::List) => {
            for (name, (bytes, digest)) in crate::builtins::all() {
                println!("builtin:{name}  {digest}  {} bytes", bytes.len());
            }
            Exit::Success
        }
        Command::Plugin(PluginCommand::Inspect { plugin }) => cmd_inspect(&plugin),
        Command::Runs(cmd) => cmd_runs(cmd),
        Command::Cleanup { run_id, state_dir } => cmd_cleanup(&run_id, state_dir).await,
    }
}

fn default_state_dir(state_dir: Option<PathBuf>) -> PathBuf {
    state_dir.unwrap_or_else(|| PathBuf::from(".valero"))
}

fn cmd_runs(cmd: RunsCommand) -> Exit {
    match cmd {
        RunsCommand::List { state_dir } => {
            let dir = default_state_dir(state_dir);
            let runs = crate::records::list_runs(&dir);
            if runs.is_empty() {
                eprintln!("no runs recorded under {}", dir.display());
                return Exit::Success;
            }
            println!(
                "{:<26} {:<12} {:<13} {:>8} {:>10}  NOTE",
                "RUN", "TARGET", "OUTCOME", "STAGES", "DURATION"
            );
            for run in runs {
                let run = match run {
                    Ok(run) => run,
                    Err(e) => {
                        eprintln!("warning: {e}");
                        continue;
                    }
                };
                let r = &run.report;
                let passed = r
                    .stages
                    .iter()
                    .filter(|s| s.status == StageStatus::Passed)
                    .count();
                let note = match (&run.state, &r.interruption) {
                    (RunState::Running { pid }, _) => format!("running (pid {pid})"),
                    (_, Some(i)) => format!("last event: {}", i.last_event),
                    _ => String::new(),
                };
                println!(
                    "{:<26} {:<12} {:<13} {:>8} {:>8}ms  {note}",
                    run.id,
                    r.target,
                    r.outcome.as_str(),
                    format!("{passed}/{}", r.stages.len()),
                    r.duration_ms
                );
            }
            Exit::Success
        }
        RunsCommand::Show {
            run_id,
            state_dir,
            json,
        } => {
            let state_dir = default_state_dir(state_dir);
            let run = match crate::records::read_run(&state_dir, &run_id) {
                Ok(run) => run,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Invalid;
                }
            };
            for w in &run.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                return match serde_json::to_string_pretty(&run.report) {
                    Ok(text) => {
                        println!("{text}");
                        Exit::Success
                    }
                    Err(e) => {
                        eprintln!("error: cannot encode the report of run `{run_id}`: {e}");
                        Exit::Internal
                    }
                };
            }
            print!("{}", terminal::summary(&run.report));
            if let RunState::Running { pid } = &run.state {
                println!("still going: process {pid} holds its records");
            }
            println!(
                "run records: {}",
                crate::records::run_dir(&state_dir, &run_id).display()
            );
            Exit::Success
        }
    }
}

/// `valero cleanup RUN_ID`.
async fn cmd_cleanup(run_id: &str, state_dir: Option<PathBuf>) -> Exit {
    let state_dir = default_state_dir(state_dir);
    if let Some(pid) = crate::records::lock_holder(&state_dir, run_id) {
        eprintln!(
            "error: run `{run_id}` is still going (process {pid}); its own cleanup stages will run"
        );
        return Exit::Invalid;
    }
    let effects = match crate::resume::recorded_effects(&state_dir, run_id) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    if effects.is_empty() {
        println!("run `{run_id}` recorded nothing that outlives it");
        return Exit::Success;
    }
    let docker = match crate::host::capabilities::containers::persistent::engine() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    };
    let mut failed = false;
    // Containers first: an image in use by one cannot be removed.
    let (containers, images): (Vec<_>, Vec<_>) = effects
        .iter()
        .partition(|e| matches!(e, crate::effects::Effect::Container { .. }));
    for effect in containers.into_iter().chain(images) {
        let persistent =
            crate::host::capabilities::containers::persistent::present(&docker, effect);
        match persistent.await {
            Ok(false) => println!("{}: already gone", effect.describe()),
            Ok(true) => {
                match crate::host::capabilities::containers::persistent::remove(&docker, effect)
                    .await
                {
                    Ok(()) => println!("{}: removed", effect.describe()),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Exit::Internal
    } else {
        Exit::Success
    }
}

fn fail(e: run::RunError) -> Exit {
    eprintln!("{}", e.message);
    e.exit
}

async fn cmd_run(args: RunArgs, observer: std::sync::Arc<dyn crate::observer::Observer>) -> Exit {
    let opts = RunOptions {
        pipeline: args.pipeline,
        target: args.target,
        jobs: args.jobs,
        cache_dir: if args.no_cache {
            None
        } else {
            Some(
                args.cache_dir
                    .unwrap_or_else(crate::engine::CompileCache::default_dir),
            )
        },
        state_dir: args.state_dir,
        selection: crate::plan::Selection {
            only: args.only,
            skip: args.skip,
        },
        resume: args.resume,
        compile_timeout: args.compile_timeout,
        observer,
        plan_only: false,
    };
    let (interrupt, sender) = Interrupt::channel();
    tokio::spawn(async move {
        while wait_for_signal().await {
            sender.interrupt();
        }
    });
    match run::run(&opts, interrupt).await {
        Ok((report, exit, records)) => {
            eprint!("{}", terminal::summary(&report));
            eprintln!("run records: {}", records.display());
            let written = write_reports(&report, &args.report);
            if let Err(e) = crate::report::github::from_env(&report) {
                eprintln!("warning: cannot write the GitHub step summary: {e}");
            }
            if written { exit } else { Exit::Internal }
        }
        Err(e) => fail(e),
    }
}

/// `valero plan` on a target with a cluster: runs the stages granted
/// `kubernetes` with every capability in plan-only mode (the records go to
/// a temporary directory: a plan is not a run), and prints each one's diff.
async fn cmd_dry_run(
    path: PathBuf,
    p: &crate::pipeline::Pipeline,
    plan: &crate::plan::Plan,
) -> Exit {
    use crate::pipeline::Capability;
    let stages: Vec<String> = plan
        .stages
        .iter()
        .filter(|s| {
            p.stages[s.index]
                .grants
                .capabilities
                .contains(&Capability::Kubernetes)
        })
        .map(|s| s.name.clone())
        .collect();
    if stages.is_empty() {
        return Exit::Success;
    }
    let state = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory for the dry run: {e}");
            return Exit::Internal;
        }
    };
    let opts = RunOptions {
        pipeline: path,
        target: Some(plan.target.clone()),
        jobs: 1,
        cache_dir: Some(crate::engine::CompileCache::default_dir()),
        state_dir: Some(state.path().to_path_buf()),
        selection: crate::plan::Selection {
            only: stages,
            skip: Vec::new(),
        },
        resume: None,
        compile_timeout: crate::engine::budget::DEFAULT_COMPILE_TIME,
        observer: std::sync::Arc::new(crate::observer::Silent),
        plan_only: true,
    };
    let (interrupt, _sender) = Interrupt::channel();
    match run::run(&opts, interrupt).await {
        Ok((report, exit, _)) => {
            print!("{}", crate::describe::dry_run(&plan.target, &report));
            exit
        }
        Err(e) => fail(e),
    }
}

/// Writes the requested reports; false if one could not be written.
fn write_reports(report: &RunReport, specs: &[ReportSpec]) -> bool {
    let mut ok = true;
    for spec in specs {
        if let Some(parent) = spec.path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            eprintln!("error: cannot create {}: {e}", parent.display());
            ok = false;
            continue;
        }
        let result = match spec.format {
            ReportFormat::Json => crate::records::write_json(&spec.path, report),
            ReportFormat::Junit => crate::report::junit::render(report)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|xml| std::fs::write(&spec.path, xml)),
            ReportFormat::Markdown => {
                std::fs::write(&spec.path, crate::report::markdown::render(report))
            }
        };
        if let Err(e) = result {
            eprintln!("error: cannot write report {}: {e}", spec.path.display());
            ok = false;
        }
    }
    ok
}

/// Waits for Ctrl-C or SIGTERM; false if signals cannot be watched.
async fn wait_for_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return false;
        };
        tokio::select! {
            _ = int.recv() => true,
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

fn cmd_inspect(plugin: &str) -> Exit {
    let bytes = if let Some(name) = plugin.strip_prefix("builtin:") {
        match crate::builtins::get(name) {
            Some(b) => b.to_vec(),
            None => {
                eprintln!("error: no builtin plugin `{name}` (see `valero plugin list`)");
                return Exit::Invalid;
            }
        }
    } else {
        match std::fs::read(plugin) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read {plugin}: {e}");
                return Exit::Invalid;
            }
        }
    };
    // Read, not compiled: inspecting a plugin must be cheap even for a
    // component that would take minutes to compile.
    let digest = Digest::of(&bytes);
    let shape = match Shape::read(&bytes) {
        Ok(shape) => shape,
        Err(e) => {
            eprintln!("error: {plugin}: {e}");
            return Exit::PluginLoad;
        }
    };
    println!("plugin:  {plugin}");
    println!("digest:  {digest}");
    println!("size:    {} bytes", bytes.len());
    println!("pin:     sha256 = \"{}\"", digest.hex());
    println!("exports:");
    for e in &shape.exports {
        println!("  {}", e.describe());
    }
    println!("imports:");
    for name in &shape.imports {
        match capability_of(name) {
            Some(cap) => println!(
                "  {name}  (capability: needs `{}` in the stage's grants)",
                grant_example(cap)
            ),
            None => println!("  {name}"),
        }
    }
    if let Err(e) = Shape::of_stage_plugin(&bytes) {
        eprintln!("error: {plugin}: {e}");
        return Exit::PluginLoad;
    }
    Exit::Success
}
