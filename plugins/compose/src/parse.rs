//! From the positioned YAML tree to the typed model, rejecting every key and
//! value outside the subset with its position.

use crate::interp::interpolate;
use crate::yaml::{Entry, Node, Scalar, load};
use crate::{
    Compose, Condition, Dependency, Error, Healthcheck, Mount, Port, Pos, Restart, Service,
    ServiceNetwork,
};

const TOP_KEYS: &[&str] = &["name", "services", "networks", "volumes", "version"];
const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "environment",
    "ports",
    "depends_on",
    "healthcheck",
    "networks",
    "volumes",
    "restart",
    "privileged",
    "cap_add",
    "network_mode",
    "pid",
];
const PORT_KEYS: &[&str] = &["target", "published", "host_ip", "protocol"];
const DEPENDS_KEYS: &[&str] = &["condition"];
const HEALTHCHECK_KEYS: &[&str] = &[
    "test",
    "interval",
    "timeout",
    "start_period",
    "retries",
    "disable",
];
const SERVICE_NETWORK_KEYS: &[&str] = &["aliases"];
const MOUNT_KEYS: &[&str] = &["type", "source", "target", "read_only"];
const NETWORK_KEYS: &[&str] = &["driver"];
const VOLUME_KEYS: &[&str] = &[];

/// Hints for well-known compose keys that are deliberately outside the subset.
fn known_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "container_name" => "container names are scoped to the project by the runner",
        "build" => "valero deploys images: build and tag the image before the pipeline runs",
        "env_file" => "list the variables under `environment`",
        "expose" => "services on a shared network reach each other without `expose`",
        "links" => "put the services on a shared network and use the service name",
        "deploy" | "profiles" | "extends" | "include" | "secrets" | "configs" => {
            "outside the subset valero's compose supports"
        }
        _ if key.starts_with("x-") => "extension fields (`x-…`) are not supported",
        _ => return None,
    })
}

/// Parses `text` (the contents of `file`, named in errors) into the model.
/// `vars` resolves `${NAME}` interpolations; an unset variable without a
/// default is an error.
pub fn parse(
    text: &str,
    file: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Compose, Error> {
    let cx = Cx { file, vars };
    let root = load(text, file)?;
    let Some(root) = root.filter(|r| !r.is_null()) else {
        return Err(Error::new(
            file,
            None,
            "empty compose file".into(),
            Some("a compose file needs `services:`"),
        ));
    };
    cx.compose(&root)
}

struct Cx<'a> {
    file: &'a str,
    vars: &'a dyn Fn(&str) -> Option<String>,
}

type R<T> = Result<T, Error>;

/// The top-level `networks` and `volumes` are read before the services, so a
/// service's references are checked as it is read; `depends_on` is checked
/// once all services are known.
impl Cx<'_> {
    fn err<T>(&self, at: Pos, message: impl Into<String>, hint: Option<&str>) -> R<T> {
        Err(Error::new(self.file, Some(at), message.into(), hint))
    }

    /// The items of a list value (`key:` with nothing is an empty list).
    fn list<'n>(&self, e: &'n Entry, key: &str) -> R<&'n [Node]> {
        match &e.value {
            Node::Seq(items, _) => Ok(items.as_slice()),
            n if n.is_null() => Ok(&[]),
            other => self.err(
                other.at(),
                format!("`{key}` must be a list, found {}", other.kind()),
                None,
            ),
        }
    }

    /// Where a value's problem is reported: a null (`key:` with nothing) has
    /// no position of its own, so the key's is used.
    fn value_at(entry: &Entry) -> Pos {
        if entry.value.is_null() {
            entry.key_at
        } else {
            entry.value.at()
        }
    }

    fn check_keys(&self, entries: &[Entry], supported: &[&str], within: &str) -> R<()> {
        for e in entries {
            if supported.contains(&e.key.as_str()) {
                continue;
            }
            let list = if supported.is_empty() {
                "no keys here".to_owned()
            } else {
                supported.join(", ")
            };
            let hint = suggest(&e.key, supported)
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| known_hint(&e.key).map(str::to_owned));
            return self.err(
                e.key_at,
                format!(
                    "unsupported compose key `{}` in {within} (valero's compose supports: {list})",
                    e.key
                ),
                hint.as_deref(),
            );
        }
        Ok(())
    }

    fn map<'n>(&self, entry: &'n Entry, what: &str) -> R<&'n [Entry]> {
        match &entry.value {
            Node::Map(entries, _) => Ok(entries),
            other => self.err(
                Self::value_at(entry),
                format!(
                    "`{}` must be a mapping ({what}), found {}",
                    entry.key,
                    other.kind()
                ),
                None,
            ),
        }
    }

    /// A mapping, or null meaning empty (a key whose entries are all commented out).
    fn map_or_null<'n>(&self, entry: &'n Entry, what: &str) -> R<&'n [Entry]> {
        if entry.value.is_null() {
            return Ok(&[]);
        }
        self.map(entry, what)
    }

    fn scalar<'n>(&self, node: &'n Node, at: Pos, what: &str) -> R<&'n Scalar> {
        match node {
            Node::Scalar(s) if !s.is_null() => Ok(s),
            other => self.err(at, format!("expected {what}, found {}", other.kind()), None),
        }
    }

    fn interpolated(&self, s: &Scalar) -> R<String> {
        interpolate(&s.text, self.vars).map_err(|f| Error {
            file: self.file.to_owned(),
            at: Some(s.at),
            message: f.message,
            hint: f.hint,
        })
    }

    /// A non-null scalar's interpolated text.
    fn string(&self, node: &Node, at: Pos, what: &str) -> R<String> {
        let s = self.scalar(node, at, what)?;
        self.interpolated(s)
    }

    fn entry_string(&self, entry: &Entry, what: &str) -> R<String> {
        self.string(&entry.value, Self::value_at(entry), what)
    }

    /// A list of strings; null is the empty list.
    fn strings(&self, entry: &Entry, what: &str) -> R<Vec<(String, Pos)>> {
        match &entry.value {
            Node::Seq(items, _) => items
                .iter()
                .map(|i| Ok((self.string(i, i.at(), what)?, i.at())))
                .collect(),
            n if n.is_null() => Ok(Vec::new()),
            other => self.err(
                other.at(),
                format!(
                    "`{}` must be a list of {what}, found {}",
                    entry.key,
                    other.kind()
                ),
                None,
            ),
        }
    }

    fn bool(&self, entry: &Entry) -> R<bool> {
        let at = Self::value_at(entry);
        match self.entry_string(entry, "true or false")?.as_str() {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            other => self.err(
                at,
                format!("`{}` must be true or false, found `{other}`", entry.key),
                None,
            ),
        }
    }

    fn compose(&self, root: &Node) -> R<Compose> {
        let Node::Map(top, _) = root else {
            return self.err(
                root.at(),
                format!(
                    "a compose file is a mapping with `services:`, found {}",
                    root.kind()
                ),
                None,
            );
        };
        self.check_keys(top, TOP_KEYS, "the top level")?;
        let find = |key: &str| top.iter().find(|e| e.key == key);

        let name = match find("name") {
            Some(e) => {
                let name = self.entry_string(e, "a project name")?;
                if !valid_project_name(&name) {
                    return self.err(
                        Self::value_at(e),
                        format!("invalid project name `{name}`"),
                        Some("lowercase letters, digits, `-` and `_`, starting with a letter or digit"),
                    );
                }
                Some(name)
            }
            None => None,
        };
        // `version` is obsolete in compose (and ignored by it) but still common.
        let networks = match find("networks") {
            Some(e) => self.top_networks(e)?,
            None => Vec::new(),
        };
        let volumes = match find("volumes") {
            Some(e) => self.top_volumes(e)?,
            None => Vec::new(),
        };
        let Some(services_entry) = find("services") else {
            return self.err(
                top.first().map_or(root.at(), |e| e.key_at),
                "no `services:` in the compose file",
                None,
            );
        };
        let entries = self.map_or_null(services_entry, "service name → service")?;
        if entries.is_empty() {
            return self.err(services_entry.key_at, "`services` is empty", None);
        }
        let mut services = Vec::with_capacity(entries.len());
        for e in entries {
            services.push(self.service(e, &networks, &volumes)?);
        }
        self.check_dependencies(&services)?;
        Ok(Compose {
            name,
            services,
            networks: networks.into_iter().map(|(n, _)| n).collect(),
            volumes: volumes.into_iter().map(|(n, _)| n).collect(),
        })
    }

    fn top_networks(&self, entry: &Entry) -> R<Vec<(String, Pos)>> {
        let mut out = Vec::new();
        for e in self.map_or_null(entry, "network name → settings")? {
            self.resource_name(e, "network")?;
            if !e.value.is_null() {
                let settings = self.map(e, "`driver: bridge` or `{}`")?;
                self.check_keys(settings, NETWORK_KEYS, &format!("network `{}`", e.key))?;
                for s in settings {
                    let driver = self.entry_string(s, "a network driver")?;
                    if driver != "bridge" {
                        return self.err(
                            Self::value_at(s),
                            format!("unsupported network driver `{driver}` (valero's compose supports: bridge)"),
                            None,
                        );
                    }
                }
            }
            out.push((e.key.clone(), e.key_at));
        }
        Ok(out)
    }

    fn top_volumes(&self, entry: &Entry) -> R<Vec<(String, Pos)>> {
        let mut out = Vec::new();
        for e in self.map_or_null(entry, "volume name → `{}`")? {
            self.resource_name(e, "volume")?;
            if !e.value.is_null() {
                let settings = self.map(e, "`{}`")?;
                self.check_keys(settings, VOLUME_KEYS, &format!("volume `{}`", e.key))?;
            }
            out.push((e.key.clone(), e.key_at));
        }
        Ok(out)
    }

    fn resource_name(&self, e: &Entry, what: &str) -> R<()> {
        if valid_name(&e.key) {
            return Ok(());
        }
        self.err(
            e.key_at,
            format!("invalid {what} name `{}`", e.key),
            Some("letters, digits, `_`, `.` and `-`, starting with a letter or digit"),
        )
    }

    fn service(
        &self,
        entry: &Entry,
        networks: &[(String, Pos)],
        volumes: &[(String, Pos)],
    ) -> R<Service> {
        if !valid_name(&entry.key) {
            return self.err(
                entry.key_at,
                format!("invalid service name `{}`", entry.key),
                Some("letters, digits, `_`, `.` and `-`, starting with a letter or digit"),
            );
        }
        let keys = self.map(entry, "the service's settings")?;
        let within = format!("service `{}`", entry.key);
        self.check_keys(keys, SERVICE_KEYS, &within)?;
        let mut s = Service {
            name: entry.key.clone(),
            at: entry.key_at,
            image: String::new(),
            command: Vec::new(),
            environment: Vec::new(),
            ports: Vec::new(),
            depends_on: Vec::new(),
            healthcheck: None,
            networks: Vec::new(),
            volumes: Vec::new(),
            restart: Restart::No,
            privileged: false,
            cap_add: Vec::new(),
            network_mode: None,
            pid: None,
            keys: keys.iter().map(|e| (e.key.clone(), e.key_at)).collect(),
        };
        let mut image = None;
        for e in keys {
            match e.key.as_str() {
                "image" => image = Some(self.entry_string(e, "an image reference")?),
                "command" => s.command = self.command(e)?,
                "environment" => s.environment = self.environment(e)?,
                "ports" => s.ports = self.ports(e)?,
                "depends_on" => s.depends_on = self.depends_on(e)?,
                "healthcheck" => s.healthcheck = Some(self.healthcheck(e)?),
                "networks" => s.networks = self.service_networks(e, networks)?,
                "volumes" => s.volumes = self.mounts(e, volumes)?,
                "restart" => s.restart = self.restart(e)?,
                "privileged" => s.privileged = self.bool(e)?,
                "cap_add" => {
                    s.cap_add = self
                        .strings(e, "capabilities")?
                        .into_iter()
                        .map(|(c, _)| c)
                        .collect()
                }
                "network_mode" => s.network_mode = Some(self.entry_string(e, "a network mode")?),
                "pid" => s.pid = Some(self.entry_string(e, "a pid mode")?),
                _ => {} // check_keys rejected everything else
            }
        }
        match image {
            Some(i) if !i.is_empty() => s.image = i,
            Some(_) => {
                let at = s.key_at("image").unwrap_or(s.at);
                return self.err(at, format!("empty `image` in {within}"), None);
            }
            None => {
                return self.err(
                    s.at,
                    format!("{within} has no `image`"),
                    Some("valero deploys images: add `image: name:tag`"),
                );
            }
        }
        if let (Some(at), false) = (s.key_at("network_mode"), s.networks.is_empty()) {
            return self.err(
                at,
                format!("{within} sets both `network_mode` and `networks`"),
                Some("compose allows only one of them"),
            );
        }
        Ok(s)
    }

    fn command(&self, e: &Entry) -> R<Vec<String>> {
        match &e.value {
            Node::Scalar(s) if !s.is_null() => {
                let text = self.interpolated(s)?;
                split_command(&text).map_err(|m| {
                    Error::new(
                        self.file,
                        Some(s.at),
                        m,
                        Some("or write `command` as a list"),
                    )
                })
            }
            _ => Ok(self
                .strings(e, "command arguments")?
                .into_iter()
                .map(|(a, _)| a)
                .collect()),
        }
    }

    fn environment(&self, e: &Entry) -> R<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut add = |key: String, value: String, at: Pos| {
            if key.is_empty() || key.contains('=') {
                return self.err(
                    at,
                    format!("invalid environment variable name `{key}`"),
                    None,
                );
            }
            if out.iter().any(|(k, _)| *k == key) {
                return self.err(at, format!("duplicate environment variable `{key}`"), None);
            }
            out.push((key, value));
            Ok(())
        };
        match &e.value {
            Node::Map(entries, _) => {
                for v in entries {
                    let value = match &v.value {
                        // Compose would take a null from the shell environment;
                        // valero has no shell environment, so it is empty.
                        Node::Scalar(s) if s.is_null() => String::new(),
                        Node::Scalar(s) => self.interpolated(s)?,
                        other => {
                            return self.err(
                                other.at(),
                                format!(
                                    "environment value of `{}` must be a scalar, found {}",
                                    v.key,
                                    other.kind()
                                ),
                                None,
                            );
                        }
                    };
                    add(v.key.clone(), value, v.key_at)?;
                }
            }
            _ => {
                for (item, at) in self.strings(e, "`KEY=VALUE` strings")? {
                    let (key, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
                    add(key.to_owned(), value.to_owned(), at)?;
                }
            }
        }
        Ok(out)
    }

    fn ports(&self, e: &Entry) -> R<Vec<Port>> {
        let items = self.list(e, "ports")?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let at = item.at();
            let port = match item {
                Node::Map(keys, _) => self.long_port(keys, at)?,
                _ => {
                    let text = self.string(item, at, "a port such as \"8080:80\"")?;
                    let (host_ip, host_port, container_port) = short_port(&text).map_err(|m| {
                        Error::new(
                            self.file,
                            Some(at),
                            format!("bad port `{text}`: {m}"),
                            Some("supported: \"[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp]\""),
                        )
                    })?;
                    Port {
                        host_ip,
                        host_port,
                        container_port,
                        at,
                    }
                }
            };
            out.push(port);
        }
        Ok(out)
    }

    fn long_port(&self, keys: &[Entry], at: Pos) -> R<Port> {
        self.check_keys(keys, PORT_KEYS, "a port")?;
        let mut port = Port {
            host_ip: None,
            host_port: None,
            container_port: 0,
            at,
        };
        for k in keys {
            let v_at = Self::value_at(k);
            match k.key.as_str() {
                "target" => port.container_port = self.port_number(k)?,
                "published" => port.host_port = Some(self.port_number(k)?),
                "host_ip" => port.host_ip = Some(self.entry_string(k, "an IP address")?),
                "protocol" => {
                    let p = self.entry_string(k, "a protocol")?;
                    check_protocol(&p).or_else(|m| self.err(v_at, m, None))?;
                }
                _ => {}
            }
        }
        if port.container_port == 0 {
            return self.err(at, "port without `target` (the container port)", None);
        }
        Ok(port)
    }

    fn port_number(&self, k: &Entry) -> R<u16> {
        let text = self.entry_string(k, "a port number")?;
        parse_port(&text)
            .or_else(|m| self.err(Self::value_at(k), format!("bad port `{text}`: {m}"), None))
    }

    fn depends_on(&self, e: &Entry) -> R<Vec<Dependency>> {
        let mut out: Vec<Dependency> = Vec::new();
        match &e.value {
            Node::Map(entries, _) => {
                for d in entries {
                    let mut condition = Condition::Started;
                    if !d.value.is_null() {
                        let keys = self.map(d, "`condition: …`")?;
                        self.check_keys(keys, DEPENDS_KEYS, &format!("depends_on `{}`", d.key))?;
                        for k in keys {
                            condition = match self.entry_string(k, "a condition")?.as_str() {
                                "service_started" => Condition::Started,
                                "service_healthy" => Condition::Healthy,
                                "service_completed_successfully" => {
                                    Condition::CompletedSuccessfully
                                }
                                other => {
                                    return self.err(
                                        Self::value_at(k),
                                        format!("unknown depends_on condition `{other}`"),
                                        Some("supported: service_started, service_healthy, service_completed_successfully"),
                                    );
                                }
                            };
                        }
                    }
                    out.push(Dependency {
                        service: d.key.clone(),
                        condition,
                        at: d.key_at,
                    });
                }
            }
            _ => {
                for (name, at) in self.strings(e, "service names")? {
                    if out.iter().any(|d| d.service == name) {
                        return self.err(at, format!("duplicate depends_on `{name}`"), None);
                    }
                    out.push(Dependency {
                        service: name,
                        condition: Condition::Started,
                        at,
                    });
                }
            }
        }
        Ok(out)
    }

    fn healthcheck(&self, e: &Entry) -> R<Healthcheck> {
        let keys = self.map(e, "test, interval, timeout, retries, start_period, disable")?;
        self.check_keys(keys, HEALTHCHECK_KEYS, "healthcheck")?;
        let mut h = Healthcheck {
            test: Vec::new(),
            interval_ms: 30_000,
            timeout_ms: 30_000,
            retries: 3,
            start_period_ms: 0,
        };
        let mut disable = None;
        let mut test_at = None;
        for k in keys {
            match k.key.as_str() {
                "test" => {
                    test_at = Some(Self::value_at(k));
                    h.test = self.health_test(k)?;
                }
                "interval" => h.interval_ms = self.duration(k)?,
                "timeout" => h.timeout_ms = self.duration(k)?,
                "start_period" => h.start_period_ms = self.duration(k)?,
                "retries" => {
                    let text = self.entry_string(k, "a number of retries")?;
                    h.retries = text.parse().or_else(|_| {
                        self.err(
                            Self::value_at(k),
                            format!("bad `retries` `{text}`: expected a whole number"),
                            None,
                        )
                    })?;
                }
                "disable" => disable = Some((self.bool(k)?, k.key_at)),
                _ => {}
            }
        }
        match (disable, test_at) {
            (Some((true, at)), Some(_)) if !h.is_disabled() => self.err(
                at,
                "healthcheck has both `disable: true` and a `test`",
                Some("remove one of them"),
            ),
            (Some((true, _)), _) => {
                h.test = vec!["NONE".to_owned()];
                Ok(h)
            }
            (_, None) => self.err(
                e.key_at,
                "healthcheck without `test`",
                Some("valero does not read the image's HEALTHCHECK: write `test: [\"CMD\", …]`"),
            ),
            _ => Ok(h),
        }
    }

    fn health_test(&self, k: &Entry) -> R<Vec<String>> {
        let at = Self::value_at(k);
        if let Node::Scalar(s) = &k.value
            && !s.is_null()
        {
            let script = self.interpolated(s)?;
            if script.trim().is_empty() {
                return self.err(at, "empty healthcheck `test`", None);
            }
            return Ok(vec!["CMD-SHELL".to_owned(), script]);
        }
        let test: Vec<String> = self
            .strings(k, "strings")?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let ok = match test.first().map(String::as_str) {
            Some("CMD") => test.len() >= 2,
            Some("CMD-SHELL") => test.len() == 2,
            Some("NONE") => test.len() == 1,
            _ => false,
        };
        if !ok {
            return self.err(
                at,
                "healthcheck `test` must be [\"CMD\", program, args…], [\"CMD-SHELL\", script], [\"NONE\"] or a shell string",
                None,
            );
        }
        Ok(test)
    }

    fn duration(&self, k: &Entry) -> R<u64> {
        let text = self.entry_string(k, "a duration")?;
        parse_duration(&text).ok_or(()).or_else(|()| {
            self.err(
                Self::value_at(k),
                format!("bad duration `{text}` for `{}`", k.key),
                Some("use e.g. 500ms, 1s, 1m30s, 2h (units: ms, s, m, h)"),
            )
        })
    }

    fn service_networks(&self, e: &Entry, declared: &[(String, Pos)]) -> R<Vec<ServiceNetwork>> {
        let mut out: Vec<ServiceNetwork> = Vec::new();
        let mut add = |name: String, aliases: Vec<String>, at: Pos| {
            // `default` is the project network compose creates implicitly.
            if name != "default" && !declared.iter().any(|(n, _)| *n == name) {
                return self.err(
                    at,
                    format!("network `{name}` is not declared"),
                    Some(&format!(
                        "declare it under the top-level `networks:` (e.g. `{name}: {{}}`)"
                    )),
                );
            }
            if out.iter().any(|n| n.name == name) {
                return self.err(at, format!("duplicate network `{name}`"), None);
            }
            out.push(ServiceNetwork { name, aliases, at });
            Ok(())
        };
        match &e.value {
            Node::Map(entries, _) => {
                for n in entries {
                    let mut aliases = Vec::new();
                    if !n.value.is_null() {
                        let keys = self.map(n, "`aliases: [...]`")?;
                        self.check_keys(
                            keys,
                            SERVICE_NETWORK_KEYS,
                            &format!("network `{}`", n.key),
                        )?;
                        for k in keys {
                            for (alias, at) in self.strings(k, "host names")? {
                                if !valid_name(&alias) {
                                    return self.err(at, format!("invalid alias `{alias}`"), None);
                                }
                                aliases.push(alias);
                            }
                        }
                    }
                    add(n.key.clone(), aliases, n.key_at)?;
                }
            }
            _ => {
                for (name, at) in self.strings(e, "network names")? {
                    add(name, Vec::new(), at)?;
                }
            }
        }
        Ok(out)
    }

    fn mounts(&self, e: &Entry, declared: &[(String, Pos)]) -> R<Vec<Mount>> {
        let items = self.list(e, "volumes")?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let at = item.at();
            let mount = match item {
                Node::Map(keys, _) => self.long_mount(keys, at)?,
                _ => {
                    let text = self.string(item, at, "a volume such as \"data:/data\"")?;
                    short_mount(&text, at).map_err(|(m, hint)| {
                        Error::new(
                            self.file,
                            Some(at),
                            format!("bad volume `{text}`: {m}"),
                            Some(hint),
                        )
                    })?
                }
            };
            if let Mount::Volume { name, .. } = &mount
                && !declared.iter().any(|(n, _)| n == name)
            {
                return self.err(
                    at,
                    format!("volume `{name}` is not declared"),
                    Some(&format!(
                        "declare it under the top-level `volumes:` (e.g. `{name}: {{}}`)"
                    )),
                );
            }
            let target = match &mount {
                Mount::Volume { target, .. } | Mount::Bind { target, .. } => target,
            };
            if out.iter().any(|m: &Mount| match m {
                Mount::Volume { target: t, .. } | Mount::Bind { target: t, .. } => t == target,
            }) {
                return self.err(at, format!("two volumes mounted at `{target}`"), None);
            }
            out.push(mount);
        }
        Ok(out)
    }

    fn long_mount(&self, keys: &[Entry], at: Pos) -> R<Mount> {
        self.check_keys(keys, MOUNT_KEYS, "a volume")?;
        let (mut kind, mut source, mut target, mut read_only) = (None, None, None, false);
        for k in keys {
            match k.key.as_str() {
                "type" => kind = Some((self.entry_string(k, "volume or bind")?, Self::value_at(k))),
                "source" => source = Some(self.entry_string(k, "a volume name or host path")?),
                "target" => {
                    target = Some((self.entry_string(k, "a container path")?, Self::value_at(k)))
                }
                "read_only" => read_only = self.bool(k)?,
                _ => {}
            }
        }
        let Some((kind, kind_at)) = kind else {
            return self.err(at, "volume without `type` (volume or bind)", None);
        };
        let Some(source) = source.filter(|s| !s.is_empty()) else {
            return self.err(
                at,
                "volume without `source`",
                Some("anonymous volumes are not supported: name the volume"),
            );
        };
        let Some((target, target_at)) = target else {
            return self.err(at, "volume without `target` (the container path)", None);
        };
        if !target.starts_with('/') {
            return self.err(
                target_at,
                format!("volume target `{target}` must be an absolute path"),
                None,
            );
        }
        match kind.as_str() {
            "volume" => {
                if !valid_name(&source) {
                    return self.err(at, format!("invalid volume name `{source}`"), None);
                }
                Ok(Mount::Volume {
                    name: source,
                    target,
                    read_only,
                    at,
                })
            }
            "bind" => Ok(Mount::Bind {
                source,
                target,
                read_only,
                at,
            }),
            other => self.err(
                kind_at,
                format!(
                    "unsupported volume type `{other}` (valero's compose supports: volume, bind)"
                ),
                None,
            ),
        }
    }

    fn restart(&self, e: &Entry) -> R<Restart> {
        // YAML 1.2 reads a plain `no` as the string "no" (not false, as YAML 1.1 would).
        match self.entry_string(e, "a restart policy")?.as_str() {
            "no" => Ok(Restart::No),
            "always" => Ok(Restart::Always),
            "unless-stopped" => Ok(Restart::UnlessStopped),
            "on-failure" => Ok(Restart::OnFailure),
            other => self.err(
                Self::value_at(e),
                format!("unsupported restart policy `{other}`"),
                Some("supported: no, always, unless-stopped, on-failure (without a retry count)"),
            ),
        }
    }

    /// Every `depends_on` names a service, and the dependencies form no cycle.
    fn check_dependencies(&self, services: &[Service]) -> R<()> {
        let index_of = |name: &str| services.iter().position(|s| s.name == name);
        let mut edges = Vec::with_capacity(services.len());
        for s in services {
            let mut out = Vec::with_capacity(s.depends_on.len());
            for d in &s.depends_on {
                let Some(j) = index_of(&d.service) else {
                    let hint = suggest(
                        &d.service,
                        &services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                    )
                    .map(|n| format!("did you mean `{n}`?"));
                    return self.err(
                        d.at,
                        format!(
                            "service `{}` depends on `{}`, which is not a service in this file",
                            s.name, d.service
                        ),
                        hint.as_deref(),
                    );
                };
                let target = &services[j];
                if d.condition == Condition::Healthy
                    && target
                        .healthcheck
                        .as_ref()
                        .is_none_or(Healthcheck::is_disabled)
                {
                    return self.err(
                        d.at,
                        format!(
                            "service `{}` waits for `{}` to be healthy, but `{}` has no healthcheck",
                            s.name, d.service, d.service
                        ),
                        Some("give it a `healthcheck`, or use `condition: service_started`"),
                    );
                }
                out.push((j, d.at));
            }
            edges.push(out);
        }
        // Iterative depth-first search: 0 unvisited, 1 on the path, 2 done.
        let mut state = vec![0u8; services.len()];
        for start in 0..services.len() {
            if state[start] != 0 {
                continue;
            }
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                let Some(&(dep, at)) = edges[node].get(*next) else {
                    state[node] = 2;
                    path.pop();
                    continue;
                };
                *next += 1;
                match state[dep] {
                    0 => {
                        state[dep] = 1;
                        path.push((dep, 0));
                    }
                    1 => {
                        let from = path.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        let mut names: Vec<&str> = path[from..]
                            .iter()
                            .map(|&(n, _)| services[n].name.as_str())
                            .collect();
                        names.push(&services[dep].name);
                        return self.err(
                            at,
                            format!("dependency cycle: {}", names.join(" -> ")),
                            Some("remove one of the depends_on entries"),
                        );
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: compose's service name rule, also used for
/// networks and volumes so they are safe to prefix with the project name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Compose's project name rule: `[a-z0-9][a-z0-9_-]*`.
fn valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    chars.next().is_some_and(ok) && chars.all(|c| ok(c) || matches!(c, '_' | '-'))
}

/// The closest supported key, when it is close enough to be a typo.
fn suggest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = if key.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .iter()
        .map(|c| (edit_distance(key, c), *c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, counting an adjacent transposition as one edit
/// (`imgae` → `image`).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Splits a command string into words like a shell would for the simple
/// cases: whitespace separates, `'…'` is literal, `"…"` allows `\"` and `\\`,
/// a backslash outside quotes escapes the next character.
pub(crate) fn split_command(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated `'` in command `{text}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated `\"` in command `{text}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated `\"` in command `{text}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn check_protocol(p: &str) -> Result<(), String> {
    match p {
        "tcp" => Ok(()),
        "udp" => Err("UDP ports are not supported (valero's compose supports: tcp)".into()),
        other => Err(format!(
            "unknown protocol `{other}` (valero's compose supports: tcp)"
        )),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.contains('-') {
        return Err("port ranges are not supported".into());
    }
    match text.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        Ok(_) => Err("port numbers are 1 to 65535".into()),
        Err(_) => Err("not a port number".into()),
    }
}

/// `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp]`; an IPv6 host IP in brackets.
pub(crate) fn short_port(text: &str) -> Result<(Option<String>, Option<u16>, u16), String> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, p)) => (spec, Some(p)),
        None => (text, None),
    };
    if let Some(p) = protocol {
        check_protocol(p)?;
    }
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(v6) => {
            let (ip, rest) = v6
                .split_once("]:")
                .ok_or("an IPv6 host IP is written `[::1]:HOST:CONTAINER`")?;
            (Some(ip), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match (host_ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [ip, h, c]) => (Some(*ip), Some(*h), *c),
        (Some(ip), [h, c]) => (Some(ip), Some(*h), *c),
        _ => return Err("expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT".into()),
    };
    let host_port = match host {
        // `127.0.0.1::80`: bound to the IP on a port the engine picks.
        Some("") if ip.is_some() => None,
        Some(h) => Some(parse_port(h)?),
        None => None,
    };
    if ip == Some("") {
        return Err("empty host IP".into());
    }
    Ok((ip.map(str::to_owned), host_port, parse_port(container)?))
}

/// Short syntax `SOURCE:TARGET[:ro|rw]`: a source starting with `/`, `.` or
/// `~` is a host path (bind mount), anything else a named volume.
fn short_mount(text: &str, at: Pos) -> Result<Mount, (String, &'static str)> {
    let syntax = "supported: \"NAME:/path[:ro|rw]\", \"./host/path:/path[:ro|rw]\"";
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [_] => {
            return Err((
                "anonymous volumes are not supported".into(),
                "name the volume: \"NAME:/path\" and declare NAME under the top-level `volumes:`",
            ));
        }
        [s, t] => (*s, *t, None),
        [s, t, m] => (*s, *t, Some(*m)),
        _ => return Err(("expected SOURCE:TARGET[:MODE]".into(), syntax)),
    };
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => {
            return Err((
                format!("unsupported mode `{m}` (valero's compose supports: ro, rw)"),
                syntax,
            ));
        }
    };
    if source.is_empty() {
        return Err(("empty source".into(), syntax));
    }
    if !target.starts_with('/') {
        return Err((
            format!("target `{target}` must be an absolute path"),
            syntax,
        ));
    }
    let target = target.to_owned();
    if source.starts_with(['/', '.', '~']) {
        return Ok(Mount::Bind {
            source: source.to_owned(),
            target,
            read_only,
            at,
        });
    }
    if !valid_name(source) {
        return Err((format!("invalid volume name `{source}`"), syntax));
    }
    Ok(Mount::Volume {
        name: source.to_owned(),
        target,
        read_only,
        at,
    })
}

/// Compose durations: one or more `NUMBER UNIT` (`1m30s`, `1.5s`, `500ms`),
/// units ms, s, m, h; or a bare `0`. Milliseconds, `None` when invalid.
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total_us: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_us: u128 = match unit {
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            _ => return None,
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if whole.is_empty() && frac.is_empty() || frac.len() > 9 {
            return None;
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let frac_value: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        let scale = 10u128.pow(frac.len() as u32);
        total_us = total_us
            .checked_add(whole.checked_mul(unit_us)?)?
            .checked_add(frac_value * unit_us / scale)?;
        rest = next;
    }
    u64::try_from(total_us / 1_000).ok()
}
