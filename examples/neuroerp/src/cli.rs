//! Command line: `neuroerp <service> [flags]`, every flag with an environment fallback.

use crate::core::{self, Core, Service};
use crate::services::{self, ServiceArgs};
use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "neuroerp",
    version,
    about = "VALERO-NeuroERP demo fleet: seven small microservices in one binary",
    long_about = "VALERO-NeuroERP demo fleet: seven small microservices in one binary.\n\n\
Run one service per process: `neuroerp <service> [flags]`. Every service binds \
127.0.0.1 unless told otherwise (--bind, e.g. 0.0.0.0 inside a container), prints \
`listening on ADDRESS:PORT` as its first stdout line, \
keeps its data in SQLite (default) or PostgreSQL, runs its schema migrations at \
start and serves /health, /ready, /version and /metrics (Prometheus).\n\n\
Suggested local ports: fibu-service 8101, crm-service 8102, kasse-service 8103, \
bi-service 8104, auth-service 8105, api-gateway 8106, event-bus 8107.\n\n\
Without arguments the service named by NEUROERP_SERVICE runs (container images \
set it). `neuroerp probe URL` is a healthcheck for images without a shell.",
    after_help = "Logging: RUST_LOG (default `info`), written to stderr."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every service takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// TCP port to listen on; 0 picks an ephemeral port
    /// [default: the service's suggested port, 8101-8107]
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// Address to listen on; 0.0.0.0 only inside a container, whose published
    /// ports the engine binds on the host
    #[arg(long, env = "BIND_ADDRESS", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Database URL: `sqlite://FILE?mode=rwc` or `postgres://USER:PASS@HOST:PORT/DB`
    /// [default: sqlite://neuroerp-<service>.db?mode=rwc in the working directory]
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// Flags of the event subscribers (fibu-service, bi-service).
#[derive(Args, Debug, Clone)]
pub struct SubscriberArgs {
    /// Base URL of the event-bus, e.g. http://127.0.0.1:8107
    #[arg(long, env = "EVENT_BUS_URL")]
    pub event_bus_url: String,
    /// Base URL under which the event-bus reaches this service (callback = <url>/events)
    /// [default: http://127.0.0.1:<bound port>]
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// Flags of kasse-service.
#[derive(Args, Debug, Clone)]
pub struct KasseArgs {
    /// Base URL of the event-bus that receives `sale.completed`, e.g. http://127.0.0.1:8107
    #[arg(long, env = "EVENT_BUS_URL")]
    pub event_bus_url: String,
}

/// Flags of auth-service.
#[derive(Args, Debug, Clone)]
pub struct AuthArgs {
    /// HMAC-SHA256 key for tokens, shared with api-gateway (at least 16 bytes)
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: String,
    /// Token lifetime in seconds
    #[arg(long, env = "TOKEN_TTL_SECONDS", default_value_t = 3600)]
    pub token_ttl_seconds: i64,
}

/// Flags of api-gateway.
#[derive(Args, Debug, Clone)]
pub struct GatewayArgs {
    /// HMAC-SHA256 key shared with auth-service; tokens are verified locally with it
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: String,
    /// Base URL of auth-service (serves /api/auth/…), e.g. http://127.0.0.1:8105
    #[arg(long, env = "AUTH_URL")]
    pub auth_url: Option<String>,
    /// Upstreams as `name=url` pairs separated by commas, e.g.
    /// `crm-service=http://127.0.0.1:8102,kasse-service=http://127.0.0.1:8103`
    #[arg(long, env = "UPSTREAMS", default_value = "")]
    pub upstreams: String,
}

/// Flags of event-bus.
#[derive(Args, Debug, Clone)]
pub struct BusArgs {
    /// First retry delay after a failed delivery, in milliseconds (doubles per attempt)
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = 100)]
    pub retry_base_ms: u64,
    /// Upper bound of the retry delay, in milliseconds
    #[arg(long, env = "RETRY_MAX_BACKOFF_MS", default_value_t = 2000)]
    pub retry_max_backoff_ms: u64,
    /// Timeout of one delivery attempt, in milliseconds
    #[arg(long, env = "DELIVERY_TIMEOUT_MS", default_value_t = 2000)]
    pub delivery_timeout_ms: u64,
    /// How often the delivery loop looks for due deliveries, in milliseconds
    #[arg(long, env = "DELIVERY_POLL_MS", default_value_t = 200)]
    pub delivery_poll_ms: u64,
}

/// Flags of `probe`.
#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    /// URL to GET, e.g. http://127.0.0.1:8107/ready
    pub url: String,
    /// Give up after this many milliseconds
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Financial accounting (Finanzbuchhaltung): books every sale.completed event as a
    /// balanced journal entry (debit 1200 receivables / credit 8400 revenue); manual
    /// journal entries via POST /journal
    #[command(name = "fibu-service")]
    Fibu {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        sub: SubscriberArgs,
    },
    /// Customer relationship management: customers
    #[command(name = "crm-service")]
    Crm {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Point of sale (Kasse): records sales and publishes sale.completed to the event-bus
    #[command(name = "kasse-service")]
    Kasse {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        kasse: KasseArgs,
    },
    /// Business intelligence: revenue aggregated from sale.completed events
    #[command(name = "bi-service")]
    Bi {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        sub: SubscriberArgs,
    },
    /// Authentication: issues and verifies signed, expiring tokens
    #[command(name = "auth-service")]
    Auth {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// API gateway: /api/<service>/<path> to the upstreams, bearer token required
    #[command(name = "api-gateway")]
    Gateway {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Event bus: topics, subscriptions, at-least-once delivery with retry and backoff
    #[command(name = "event-bus")]
    EventBus {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        bus: BusArgs,
    },
    /// Healthcheck: GET a URL, exit 0 on a 2xx answer, 1 otherwise (for
    /// container images that have no shell or curl)
    Probe(ProbeArgs),
}

impl Command {
    /// The service to run; `Err` carries the `probe` arguments.
    pub fn into_parts(self) -> Result<(Service, CommonArgs, ServiceArgs), ProbeArgs> {
        Ok(match self {
            Command::Fibu { common, sub } => (Service::Fibu, common, ServiceArgs::Fibu(sub)),
            Command::Crm { common } => (Service::Crm, common, ServiceArgs::Crm),
            Command::Kasse { common, kasse } => (Service::Kasse, common, ServiceArgs::Kasse(kasse)),
            Command::Bi { common, sub } => (Service::Bi, common, ServiceArgs::Bi(sub)),
            Command::Auth { common, auth } => (Service::Auth, common, ServiceArgs::Auth(auth)),
            Command::Gateway { common, gateway } => {
                (Service::Gateway, common, ServiceArgs::Gateway(gateway))
            }
            Command::EventBus { common, bus } => {
                (Service::EventBus, common, ServiceArgs::EventBus(bus))
            }
            Command::Probe(probe) => return Err(probe),
        })
    }
}

/// Default SQLite URL of a service (a file in the working directory).
pub fn default_database_url(service: Service) -> String {
    format!("sqlite://neuroerp-{}.db?mode=rwc", service.name())
}

/// Run one service until it is signalled to stop.
pub async fn run(service: Service, common: CommonArgs, args: ServiceArgs) -> anyhow::Result<()> {
    services::validate(&args)?;
    let url = common
        .database_url
        .unwrap_or_else(|| default_database_url(service));
    let core = Core::open(service, &url).await?;
    let listener = core::bind(common.bind, common.port.unwrap_or(service.default_port())).await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    tracing::info!(service = service.name(), version = service.version(), %addr, "listening");
    let app = services::router(core, addr, args)?;
    core::serve(listener, app).await
}

/// Entry point of the `neuroerp` binary.
pub fn main() -> ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 1
        && let Some(service) = std::env::var_os("NEUROERP_SERVICE")
    {
        argv.push(service);
    }
    let cli = Cli::parse_from(argv);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let (service, common, args) = match cli.command.into_parts() {
        Ok(parts) => parts,
        Err(probe) => return run_probe(&probe),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("neuroerp: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(service, common, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("neuroerp {}: error: {e:#}", service.name());
            ExitCode::FAILURE
        }
    }
}

/// `neuroerp probe URL`: one GET, success on 2xx.
fn run_probe(probe: &ProbeArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_millis(probe.timeout_ms))
                    .build()?;
                Ok(client.get(&probe.url).send().await?.status())
            })
        });
    match result {
        Ok(status) if status.is_success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("probe {}: {status}", probe.url);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("probe {}: {e:#}", probe.url);
            ExitCode::FAILURE
        }
    }
}
