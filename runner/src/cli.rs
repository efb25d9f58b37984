//! The `valero` command line.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::Runtime;
use crate::exit::{EXIT_CODES_HELP, Exit};
use crate::pipeline::Digest;
use crate::report::{RunReport, StageStatus};
use crate::run::{self, RunOptions};
use crate::scheduler::Interrupt;

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
    /// Show what a run would do: stages in order, what each needs and is granted.
    Plan {
        #[arg(default_value = "pipeline.toml")]
        pipeline: PathBuf,
        /// Target to plan for (default: the pipeline's default_target).
        #[arg(long, short)]
        target: Option<String>,
    },
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
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
    /// Directory for run records [default: .valero next to the pipeline file].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Also write the JSON run report to this file.
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,
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
    init_logging(&cli);
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
    rt.block_on(dispatch(cli))
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    // Our own crate at the chosen level; dependencies only when they warn.
    let filter = EnvFilter::try_from_env("VALERO_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,valero={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .init(),
    }
}

async fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Run(args) => cmd_run(args).await,
        Command::Validate { pipeline } => match run::load_pipeline(&pipeline) {
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
        },
        Command::Plan { pipeline, target } => {
            let result = run::load_pipeline(&pipeline)
                .and_then(|p| run::plan_for(&p, target.as_deref()).map(|plan| (p, plan)));
            match result {
                Ok((p, plan)) => {
                    print!("{}", crate::describe::plan(&p, &plan));
                    Exit::Success
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
    }
}

fn fail(e: run::RunError) -> Exit {
    eprintln!("{}", e.message);
    e.exit
}

async fn cmd_run(args: RunArgs) -> Exit {
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
    };
    let (interrupt, sender) = Interrupt::never();
    tokio::spawn(async move {
        loop {
            if !wait_for_signal().await {
                return;
            }
            sender.interrupt();
        }
    });
    match run::run(&opts, interrupt).await {
        Ok((report, exit, records)) => {
            eprint!("{}", summary(&report));
            eprintln!("run records: {}", records.display());
            if let Some(path) = args.report_json {
                if let Err(e) = crate::records::write_json(&path, &report) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return Exit::Internal;
                }
            }
            exit
        }
        Err(e) => fail(e),
    }
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

fn summary(report: &RunReport) -> String {
    let outcome = serde_json::to_value(report.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut out = format!(
        "\nrun {} of `{}` on `{}`: {outcome} in {} ms\n",
        report.run_id, report.pipeline, report.target, report.duration_ms
    );
    for s in &report.stages {
        let mark = match s.status {
            StageStatus::Passed => "ok  ",
            StageStatus::Failed => "FAIL",
            StageStatus::Inconclusive => "??  ",
            StageStatus::Skipped => "skip",
            StageStatus::Cancelled => "stop",
        };
        let time = match (s.start_ms, s.end_ms) {
            (Some(a), Some(b)) => format!("{:>8.1} ms", b - a),
            _ => "          -".to_string(),
        };
        let load = s
            .load
            .as_ref()
            .map(|l| format!(" [{}]", l.source))
            .unwrap_or_default();
        out.push_str(&format!("  {mark} {:<24} {time}{load}\n", s.name));
        if let Some(reason) = &s.reason {
            for line in reason.lines().take(6) {
                out.push_str(&format!("         {line}\n"));
            }
        }
        for c in s.checks.iter().filter(|c| c.verdict != "pass") {
            out.push_str(&format!(
                "         check `{}` {}: {}\n",
                c.name, c.verdict, c.message
            ));
        }
    }
    out
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
    let runtime = match Runtime::new(None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Exit::Internal;
        }
    };
    let digest = Digest::of(&bytes);
    let component = match runtime.component(&bytes, &digest) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("error: {plugin} is not a valid WebAssembly component: {e:#}");
            return Exit::PluginLoad;
        }
    };
    println!("plugin:  {plugin}");
    println!("digest:  {digest}");
    println!("size:    {} bytes", bytes.len());
    println!("pin:     sha256 = \"{}\"", digest.hex());
    println!("exports:");
    for e in crate::engine::loader_exports(runtime.engine(), &component) {
        println!("  {e}");
    }
    println!("imports:");
    for i in crate::engine::loader_imports(runtime.engine(), &component) {
        match i.capability {
            Some(cap) => println!(
                "  {}  (capability: needs `{cap} = true` in the stage's grants)",
                i.name
            ),
            None => println!("  {}", i.name),
        }
    }
    Exit::Success
}
