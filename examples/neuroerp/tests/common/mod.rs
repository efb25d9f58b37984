//! Test harness: runs the real `neuroerp` binary as child processes on
//! 127.0.0.1 ephemeral ports, with SQLite files in a temp dir (or PostgreSQL).
//! Every child is killed when its handle drops, also when a test panics.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_neuroerp");
pub const SECRET: &str = "neuroerp-test-secret-0123456789";

/// Variables the services read; cleared so the caller's environment cannot leak in.
const CONFIG_VARS: &[&str] = &[
    "PORT",
    "DATABASE_URL",
    "AUTH_SECRET",
    "AUTH_URL",
    "UPSTREAMS",
    "EVENT_BUS_URL",
    "PUBLIC_URL",
    "TOKEN_TTL_SECONDS",
    "RETRY_BASE_MS",
    "RETRY_MAX_BACKOFF_MS",
    "DELIVERY_TIMEOUT_MS",
    "DELIVERY_POLL_MS",
];

/// One running service process.
pub struct Proc {
    pub service: String,
    pub url: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Start `neuroerp <service> --port 0` and wait for `listening on …`.
    pub fn start(service: &str, dir: &Path, database_url: &str, env: &[(&str, String)]) -> Proc {
        Self::start_on(0, service, dir, database_url, env)
    }

    /// Like `start`, on a given port.
    pub fn start_on(
        port: u16,
        service: &str,
        dir: &Path,
        database_url: &str,
        env: &[(&str, String)],
    ) -> Proc {
        let log = dir.join(format!("{service}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.arg(service)
            .arg("--port")
            .arg(port.to_string())
            .arg("--database-url")
            .arg(database_url)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .env("RUST_LOG", "info,sqlx=warn");
        for v in CONFIG_VARS {
            cmd.env_remove(v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn neuroerp");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {} // drain until the process exits
        });
        let mut proc = Proc {
            service: service.to_owned(),
            url: String::new(),
            log,
            child: Some(child),
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                let addr = line
                    .strip_prefix("listening on ")
                    .unwrap_or_else(|| panic!("{service}: unexpected first line {line:?}"));
                assert!(addr.starts_with("127.0.0.1:"), "{service} bound {addr}");
                proc.url = format!("http://{addr}");
            }
            Err(_) => panic!("{service} did not start:\n{}", proc.log_text()),
        }
        proc
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kill the process and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = client().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub async fn post(url: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut r = client().post(url).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Poll `check` every 100 ms until it yields a value or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_ready(p: &Proc) {
    let url = format!("{}/ready", p.url);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client().get(&url).send().await
            && r.status().as_u16() == 200
        {
            return;
        }
        if Instant::now() > deadline {
            panic!("{} not ready:\n{}", p.service, p.log_text());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How each service gets its database.
pub enum Store {
    /// SQLite file per service in the temp dir.
    Sqlite,
    /// PostgreSQL base URL; each service gets its own schema (`search_path`).
    Postgres { base: String, prefix: String },
}

impl Store {
    pub fn url(&self, dir: &Path, service: &str) -> String {
        match self {
            Store::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{service}.db")).display()
            ),
            Store::Postgres { base, prefix } => {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!(
                    "{base}{sep}options[search_path]={}",
                    schema_name(prefix, service)
                )
            }
        }
    }
}

pub fn schema_name(prefix: &str, service: &str) -> String {
    format!("{prefix}_{}", service.replace('-', "_"))
}

pub fn bus_env(bus: &Proc) -> Vec<(&'static str, String)> {
    vec![
        ("EVENT_BUS_URL", bus.url.clone()),
        ("RETRY_BASE_MS", "50".into()),
        ("RETRY_MAX_BACKOFF_MS", "500".into()),
    ]
}

/// The whole fleet, wired together.
pub struct Fleet {
    pub bus: Proc,
    pub auth: Proc,
    pub crm: Proc,
    pub kasse: Proc,
    pub fibu: Proc,
    pub bi: Proc,
    pub gateway: Proc,
}

impl Fleet {
    pub async fn start(dir: &Path, store: &Store) -> Fleet {
        let bus = Proc::start(
            "event-bus",
            dir,
            &store.url(dir, "event-bus"),
            &[
                ("RETRY_BASE_MS", "50".into()),
                ("RETRY_MAX_BACKOFF_MS", "1000".into()),
                ("DELIVERY_POLL_MS", "100".into()),
            ],
        );
        let auth = Proc::start(
            "auth-service",
            dir,
            &store.url(dir, "auth-service"),
            &[("AUTH_SECRET", SECRET.into())],
        );
        let crm = Proc::start("crm-service", dir, &store.url(dir, "crm-service"), &[]);
        let bus_url = [("EVENT_BUS_URL", bus.url.clone())];
        let kasse = Proc::start(
            "kasse-service",
            dir,
            &store.url(dir, "kasse-service"),
            &bus_url,
        );
        let fibu = Proc::start(
            "fibu-service",
            dir,
            &store.url(dir, "fibu-service"),
            &bus_url,
        );
        let bi = Proc::start("bi-service", dir, &store.url(dir, "bi-service"), &bus_url);
        let upstreams = format!(
            "crm-service={},kasse-service={},fibu-service={},bi-service={},event-bus={}",
            crm.url, kasse.url, fibu.url, bi.url, bus.url
        );
        let gateway = Proc::start(
            "api-gateway",
            dir,
            &store.url(dir, "api-gateway"),
            &[
                ("AUTH_SECRET", SECRET.into()),
                ("AUTH_URL", auth.url.clone()),
                ("UPSTREAMS", upstreams),
            ],
        );
        let fleet = Fleet {
            bus,
            auth,
            crm,
            kasse,
            fibu,
            bi,
            gateway,
        };
        for p in fleet.all() {
            wait_ready(p).await;
        }
        fleet
    }

    pub fn all(&self) -> [&Proc; 7] {
        [
            &self.bus,
            &self.auth,
            &self.crm,
            &self.kasse,
            &self.fibu,
            &self.bi,
            &self.gateway,
        ]
    }
}

/// Log in through the gateway.
pub async fn login(gateway: &Proc) -> String {
    let (status, body) = post(
        &format!("{}/api/auth/token", gateway.url),
        &json!({"user": "demo", "password": "demo-password"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "login: {body}");
    body["token"].as_str().expect("token").to_owned()
}

/// The business flow: customer → sale through the gateway → balanced journal
/// entry in fibu and revenue in bi (eventually).
pub async fn sale_flow(fleet: &Fleet) {
    let gw = &fleet.gateway.url;
    let token = login(&fleet.gateway).await;
    let t = Some(token.as_str());

    let (status, customer) = post(
        &format!("{gw}/api/crm/customers"),
        &json!({"name": "Landhandel Müller GmbH", "email": "einkauf@mueller.example"}),
        t,
    )
    .await;
    assert_eq!(status, 201, "{customer}");
    let customer_id = customer["id"].as_i64().unwrap();
    let (status, fetched) = get(&format!("{gw}/api/crm-service/customers/{customer_id}"), t).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["email"], "einkauf@mueller.example");

    let (status, sale) = post(
        &format!("{gw}/api/kasse/sales"),
        &json!({"customer_id": customer_id, "items": [
            {"sku": "SAAT-WEIZEN-25KG", "qty": 2, "unit_price_cents": 1999},
            {"sku": "DUENGER-NPK", "qty": 1, "unit_price_cents": 500}
        ]}),
        t,
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    assert_eq!(sale["total_cents"], 4498);
    let sale_id = sale["id"].as_i64().unwrap();
    let (status, _) = get(&format!("{gw}/api/kasse/sales/{sale_id}"), t).await;
    assert_eq!(status, 200);

    let needle = format!("sale {sale_id} ");
    let entry = eventually("journal entry in fibu", Duration::from_secs(20), || {
        let url = format!("{gw}/api/fibu/journal");
        let needle = needle.clone();
        let token = token.clone();
        async move {
            let (_, entries) = get(&url, Some(&token)).await;
            entries
                .as_array()?
                .iter()
                .find(|e| {
                    e["description"]
                        .as_str()
                        .is_some_and(|d| d.starts_with(&needle))
                })
                .cloned()
        }
    })
    .await;
    assert_eq!(entry["debit_cents"], 4498);
    assert_eq!(entry["credit_cents"], 4498);
    let lines = entry["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["account"] == "1200" && l["debit_cents"] == 4498)
    );
    assert!(
        lines
            .iter()
            .any(|l| l["account"] == "8400" && l["credit_cents"] == 4498)
    );

    let revenue = eventually("revenue in bi", Duration::from_secs(20), || {
        let url = format!("{gw}/api/bi/revenue");
        let token = token.clone();
        async move {
            let (_, r) = get(&url, Some(&token)).await;
            (r["sales"] == 1).then_some(r)
        }
    })
    .await;
    assert_eq!(revenue["total_cents"], 4498);
    let day = &sale["created_at"].as_str().unwrap()[..10];
    assert_eq!(
        revenue["by_day"],
        json!([{"day": day, "total_cents": 4498, "sales": 1}])
    );

    // Every delivery went out; one event on the bus.
    eventually("no pending deliveries", Duration::from_secs(20), || {
        let url = format!("{}/deliveries?status=pending", fleet.bus.url);
        async move {
            let (_, d) = get(&url, None).await;
            d.as_array().is_some_and(|a| a.is_empty()).then_some(())
        }
    })
    .await;
    let (_, events) = get(&format!("{}/events", fleet.bus.url), None).await;
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["topic"], "sale.completed");
    assert_eq!(events[0]["payload"]["sale_id"], sale_id);
}
