use crate::parse::{edit_distance, parse_duration, short_port, split_command};
use crate::*;

fn vars(name: &str) -> Option<String> {
    match name {
        "TAG" => Some("1.2.3".into()),
        "EMPTY" => Some(String::new()),
        "PORT" => Some("9000".into()),
        _ => None,
    }
}

fn ok(text: &str) -> Compose {
    match parse(text, "compose.yaml", &vars) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error:\n{e}"),
    }
}

fn err(text: &str) -> Error {
    match parse(text, "compose.yaml", &vars) {
        Ok(c) => panic!("expected an error, parsed {c:#?}"),
        Err(e) => e,
    }
}

fn at(line: u32, col: u32) -> Option<Pos> {
    Some(Pos { line, col })
}

/// One service `s` with the given extra lines (indented 4 spaces in the text).
fn service(extra: &str) -> String {
    format!("services:\n  s:\n    image: app:1\n{extra}")
}

const NEUROERP: &str = r#"name: neuroerp-dev
services:
  event-bus:
    image: neuroerp/event-bus:1.0.0
    command: ["event-bus"]
    environment:
      PORT: "8107"
      DATABASE_URL: sqlite:///data/event-bus.db?mode=rwc
    ports: ["127.0.0.1:8107:8107"]
    volumes: ["event-bus-data:/data"]
    networks: [neuroerp]
    healthcheck:
      test: ["CMD", "/neuroerp", "probe", "http://127.0.0.1:8107/ready"]
      interval: 1s
      timeout: 2s
      retries: 30
    restart: unless-stopped
  kasse-service:
    image: neuroerp/kasse-service:1.0.0
    depends_on:
      event-bus: { condition: service_healthy }
    environment:
      EVENT_BUS_URL: http://event-bus:8107
      SECRET: ${NEUROERP_AUTH_SECRET:-local-only}
networks:
  neuroerp: {}
volumes:
  event-bus-data: {}
"#;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn env(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn neuroerp_example_parses_into_the_model() {
    let c = ok(NEUROERP);
    let keys = |items: &[(&str, u32, u32)]| -> Vec<(String, Pos)> {
        items
            .iter()
            .map(|&(k, line, col)| (k.to_string(), Pos { line, col }))
            .collect()
    };
    let event_bus = Service {
        name: "event-bus".into(),
        at: Pos { line: 3, col: 3 },
        image: "neuroerp/event-bus:1.0.0".into(),
        command: strings(&["event-bus"]),
        environment: env(&[
            ("PORT", "8107"),
            ("DATABASE_URL", "sqlite:///data/event-bus.db?mode=rwc"),
        ]),
        ports: vec![Port {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(8107),
            container_port: 8107,
            at: Pos { line: 9, col: 13 },
        }],
        depends_on: vec![],
        healthcheck: Some(Healthcheck {
            test: strings(&["CMD", "/neuroerp", "probe", "http://127.0.0.1:8107/ready"]),
            interval_ms: 1000,
            timeout_ms: 2000,
            retries: 30,
            start_period_ms: 0,
        }),
        networks: vec![ServiceNetwork {
            name: "neuroerp".into(),
            aliases: vec![],
            at: Pos { line: 11, col: 16 },
        }],
        volumes: vec![Mount::Volume {
            name: "event-bus-data".into(),
            target: "/data".into(),
            read_only: false,
            at: Pos { line: 10, col: 15 },
        }],
        restart: Restart::UnlessStopped,
        privileged: false,
        cap_add: vec![],
        network_mode: None,
        pid: None,
        keys: keys(&[
            ("image", 4, 5),
            ("command", 5, 5),
            ("environment", 6, 5),
            ("ports", 9, 5),
            ("volumes", 10, 5),
            ("networks", 11, 5),
            ("healthcheck", 12, 5),
            ("restart", 17, 5),
        ]),
    };
    let kasse = Service {
        name: "kasse-service".into(),
        at: Pos { line: 18, col: 3 },
        image: "neuroerp/kasse-service:1.0.0".into(),
        command: vec![],
        environment: env(&[
            ("EVENT_BUS_URL", "http://event-bus:8107"),
            ("SECRET", "local-only"),
        ]),
        ports: vec![],
        depends_on: vec![Dependency {
            service: "event-bus".into(),
            condition: Condition::Healthy,
            at: Pos { line: 21, col: 7 },
        }],
        healthcheck: None,
        networks: vec![],
        volumes: vec![],
        restart: Restart::No,
        privileged: false,
        cap_add: vec![],
        network_mode: None,
        pid: None,
        keys: keys(&[
            ("image", 19, 5),
            ("depends_on", 20, 5),
            ("environment", 22, 5),
        ]),
    };
    let expected = Compose {
        name: Some("neuroerp-dev".into()),
        services: vec![event_bus, kasse],
        networks: strings(&["neuroerp"]),
        volumes: strings(&["event-bus-data"]),
    };
    assert_eq!(c, expected);
    let order: Vec<&str> = c.start_order().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["event-bus", "kasse-service"]);
}

#[test]
fn secret_from_the_environment_wins_over_the_default() {
    let c = parse(NEUROERP, "compose.yaml", &|n: &str| {
        (n == "NEUROERP_AUTH_SECRET").then(|| "s3cret".to_string())
    })
    .unwrap();
    assert_eq!(
        c.services[1].environment[1],
        ("SECRET".into(), "s3cret".into())
    );
}

#[test]
fn start_order_puts_dependencies_first_and_is_stable() {
    let c = ok("services:
  web:
    image: web
    depends_on: [api, cache]
  api:
    image: api
    depends_on: [db]
  worker:
    image: worker
  db:
    image: db
  cache:
    image: cache
");
    let order: Vec<&str> = c.start_order().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["worker", "db", "api", "cache", "web"]);
    assert_eq!(c.service("api").map(|s| s.depends_on.len()), Some(1));
}

#[test]
fn start_order_of_a_hand_built_cycle_still_lists_every_service() {
    let mut c = ok("services:\n  a:\n    image: a\n  b:\n    image: b\n");
    let dep = |s: &str| Dependency {
        service: s.into(),
        condition: Condition::Started,
        at: Pos { line: 1, col: 1 },
    };
    c.services[0].depends_on.push(dep("b"));
    c.services[1].depends_on.push(dep("a"));
    assert_eq!(c.start_order().len(), 2);
}

#[test]
fn container_name_is_rejected_at_its_position() {
    let e = err(&service("    container_name: web\n"));
    assert_eq!(e.at, at(4, 5));
    assert_eq!(
        e.to_string(),
        "compose.yaml:4:5: unsupported compose key `container_name` in service `s` \
         (valero's compose supports: image, command, environment, ports, depends_on, \
         healthcheck, networks, volumes, restart, privileged, cap_add, network_mode, pid)\n  \
         hint: container names are scoped to the project by the runner"
    );
}

#[test]
fn misspelt_key_gets_a_suggestion() {
    let e = err(&service("    enviroment:\n      A: b\n"));
    assert_eq!(e.at, at(4, 5));
    assert!(
        e.message
            .starts_with("unsupported compose key `enviroment`")
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `environment`?"));

    let e = err("servics:\n  a:\n    image: a\n");
    assert_eq!(e.at, at(1, 1));
    assert_eq!(e.hint.as_deref(), Some("did you mean `services`?"));

    let e = err(&service(
        "    healthcheck:\n      test: [\"NONE\"]\n      intervall: 1s\n",
    ));
    assert_eq!(e.at, at(6, 7));
    assert_eq!(e.hint.as_deref(), Some("did you mean `interval`?"));
}

#[test]
fn unknown_keys_without_a_close_match_list_the_supported_ones() {
    let e = err(&service("    build: .\n"));
    assert_eq!(e.at, at(4, 5));
    assert!(
        e.message
            .contains("(valero's compose supports: image, command,")
    );
    assert!(
        e.hint
            .as_deref()
            .is_some_and(|h| h.contains("build and tag"))
    );

    let e = err("x-common: &c {}\nservices:\n  a:\n    image: a\n");
    assert_eq!(e.at, at(1, 14)); // the anchored value
    assert!(e.message.contains("anchors"), "{e}");

    let e =
        err("services:\n  a:\n    image: a\n    ports:\n      - target: 80\n        mode: host\n");
    assert_eq!(e.at, at(6, 9));
    assert!(e.message.contains("`mode` in a port"), "{e}");

    let e = err("services:\n  a:\n    image: a\nvolumes:\n  data:\n    external: true\n");
    assert_eq!(e.at, at(6, 5));
    assert!(e.message.contains("supports: no keys here"), "{e}");
}

#[test]
fn unknown_depends_on_service_is_rejected() {
    let e = err("services:
  web:
    image: web
    depends_on:
      - datbase
  database:
    image: db
");
    assert_eq!(e.at, at(5, 9));
    assert_eq!(
        e.message,
        "service `web` depends on `datbase`, which is not a service in this file"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `database`?"));
}

#[test]
fn dependency_cycle_is_named() {
    let e = err("services:
  a:
    image: a
    depends_on: [b]
  b:
    image: b
    depends_on:
      c: { condition: service_started }
  c:
    image: c
    depends_on: [a]
");
    assert_eq!(e.message, "dependency cycle: a -> b -> c -> a");
    assert_eq!(e.at, at(11, 18));

    let e = err(&service("    depends_on: [s]\n"));
    assert_eq!(e.message, "dependency cycle: s -> s");
    assert_eq!(e.at, at(4, 18));
}

#[test]
fn unset_variable_is_an_error_at_the_scalar() {
    let e = err(&service(
        "    environment:\n      URL: http://${HOST}:8080\n",
    ));
    assert_eq!(e.at, at(5, 12));
    assert_eq!(e.message, "variable `HOST` is not set");
    assert_eq!(
        e.hint.as_deref(),
        Some("set it, or give a default: `${HOST:-default}`")
    );

    let e = err(&service("    image: app:$VERSION\n"));
    // `image` appears twice: the duplicate key is found first.
    assert!(e.message.starts_with("duplicate key `image`"));

    let e = err("services:\n  s:\n    image: \"app:$VERSION\"\n");
    assert_eq!(e.at, at(3, 12));
    assert_eq!(e.message, "variable `VERSION` is not set");

    let e =
        err("services:\n  s:\n    image: app:${TAG:?set TAG to the release}${MISSING:?needed}\n");
    assert_eq!(e.message, "variable `MISSING` is not set: needed");
}

#[test]
fn interpolation_forms() {
    let c = ok(&service(
        r#"    environment:
      A: ${TAG}
      B: $TAG-x
      C: ${MISSING:-fallback}
      D: ${EMPTY:-fallback}
      E: ${EMPTY-fallback}
      F: ${MISSING-}
      G: cost $$5 and $${TAG}
      H: ${MISSING:-${TAG}}
      I: "${PORT}"
      J: 'single ${TAG}'
"#,
    ));
    assert_eq!(
        c.services[0].environment,
        env(&[
            ("A", "1.2.3"),
            ("B", "1.2.3-x"),
            ("C", "fallback"),
            ("D", "fallback"),
            ("E", ""),
            ("F", ""),
            ("G", "cost $5 and ${TAG}"),
            ("H", "1.2.3"),
            ("I", "9000"),
            ("J", "single 1.2.3"),
        ])
    );
    // Interpolation happens before typing, as in compose.
    let c = ok(&service("    ports: [\"${PORT}:80\"]\n"));
    assert_eq!(c.services[0].ports[0].host_port, Some(9000));

    let e = err(&service("    command: echo $ 5\n"));
    assert_eq!(e.at, at(4, 14));
    assert!(e.message.starts_with("invalid interpolation `$`"), "{e}");
    let e = err(&service("    command: echo ${TAG\n"));
    assert!(e.message.starts_with("unterminated `${`"), "{e}");
    let e = err(&service("    command: echo ${TAG/x/y}\n"));
    assert!(e.message.starts_with("unsupported interpolation"), "{e}");
}

#[test]
fn bad_duration_is_rejected() {
    let e = err(&service(
        "    healthcheck:\n      test: exit 0\n      interval: 10\n",
    ));
    assert_eq!(e.at, at(6, 17));
    assert_eq!(e.message, "bad duration `10` for `interval`");
    let e = err(&service(
        "    healthcheck:\n      test: exit 0\n      timeout: 1sec\n",
    ));
    assert_eq!(e.at, at(6, 16));

    assert_eq!(parse_duration("1s"), Some(1000));
    assert_eq!(parse_duration("500ms"), Some(500));
    assert_eq!(parse_duration("1m30s"), Some(90_000));
    assert_eq!(parse_duration("2h"), Some(7_200_000));
    assert_eq!(parse_duration("1.5s"), Some(1500));
    assert_eq!(parse_duration("0"), Some(0));
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_duration("s"), None);
    assert_eq!(parse_duration("1d"), None);
    assert_eq!(parse_duration("-1s"), None);
    assert_eq!(parse_duration("1.2.3s"), None);
    assert_eq!(parse_duration("99999999999999999999999999999h"), None);
}

#[test]
fn bad_ports_are_rejected() {
    let e = err(&service("    ports:\n      - \"8080:0\"\n"));
    assert_eq!(e.at, at(5, 9));
    assert_eq!(e.message, "bad port `8080:0`: port numbers are 1 to 65535");
    let e = err(&service("    ports: [\"70000:80\"]\n"));
    assert_eq!(e.at, at(4, 13));
    assert_eq!(
        e.message,
        "bad port `70000:80`: port numbers are 1 to 65535"
    );
    let e = err(&service("    ports: [\"8000-8010:80\"]\n"));
    assert_eq!(
        e.message,
        "bad port `8000-8010:80`: port ranges are not supported"
    );
    let e = err(&service("    ports: [http]\n"));
    assert_eq!(e.message, "bad port `http`: not a port number");
    let e = err(&service("    ports:\n      - published: 8080\n"));
    assert_eq!(e.at, at(5, 9));
    assert_eq!(e.message, "port without `target` (the container port)");
    let e = err(&service("    ports:\n      - target: 0\n"));
    assert_eq!(e.at, at(5, 17));
}

#[test]
fn udp_ports_are_rejected() {
    let e = err(&service("    ports: [\"53:53/udp\"]\n"));
    assert_eq!(e.at, at(4, 13));
    assert_eq!(
        e.message,
        "bad port `53:53/udp`: UDP ports are not supported (valero's compose supports: tcp)"
    );
    let e = err(&service(
        "    ports:\n      - target: 53\n        protocol: udp\n",
    ));
    assert_eq!(e.at, at(6, 19));
}

#[test]
fn port_forms() {
    let c = ok(&service(
        r#"    ports:
      - "127.0.0.1:8101:8101"
      - "8102:81"
      - "8103"
      - 8104
      - "8105:85/tcp"
      - "127.0.0.1::86"
      - "[::1]:8107:87"
      - target: 88
        published: "8108"
        host_ip: 0.0.0.0
        protocol: tcp
"#,
    ));
    let got: Vec<(Option<&str>, Option<u16>, u16)> = c.services[0]
        .ports
        .iter()
        .map(|p| (p.host_ip.as_deref(), p.host_port, p.container_port))
        .collect();
    assert_eq!(
        got,
        [
            (Some("127.0.0.1"), Some(8101), 8101),
            (None, Some(8102), 81),
            (None, None, 8103),
            (None, None, 8104),
            (None, Some(8105), 85),
            (Some("127.0.0.1"), None, 86),
            (Some("::1"), Some(8107), 87),
            (Some("0.0.0.0"), Some(8108), 88),
        ]
    );
    assert_eq!(c.services[0].ports[7].at, Pos { line: 12, col: 9 });
    assert!(short_port("1:2:3:4").is_err());
    assert!(short_port(":80").is_err());
}

#[test]
fn duplicate_keys_are_rejected() {
    let e = err("services:
  a:
    image: a
    environment:
      A: 1
      A: 2
");
    assert_eq!(e.at, at(6, 7));
    assert_eq!(e.message, "duplicate key `A` (first at line 5, column 7)");

    let e = err("services:\n  a:\n    image: a\nservices:\n  b:\n    image: b\n");
    assert_eq!(e.at, at(4, 1));

    let e = err(&service("    environment: [A=1, B=2, A=3]\n"));
    assert_eq!(e.at, at(4, 29));
    assert_eq!(e.message, "duplicate environment variable `A`");

    let e = err("services:\n  a:\n    image: a\n    networks: [n, n]\nnetworks:\n  n:\n");
    assert_eq!(e.at, at(4, 19));
    assert_eq!(e.message, "duplicate network `n`");
}

#[test]
fn environment_forms_and_scalar_text() {
    let c = ok(&service(
        "    environment:\n      N: 8107\n      F: 1.50\n      B: true\n      Z:\n      Q: \"null\"\n      M: |\n        two\n        lines\n",
    ));
    assert_eq!(
        c.services[0].environment,
        env(&[
            ("N", "8107"),
            ("F", "1.50"),
            ("B", "true"),
            ("Z", ""),
            ("Q", "null"),
            ("M", "two\nlines\n")
        ])
    );
    let c = ok(&service(
        "    environment:\n      - A=1\n      - B=x=y\n      - C=\n      - D\n",
    ));
    assert_eq!(
        c.services[0].environment,
        env(&[("A", "1"), ("B", "x=y"), ("C", ""), ("D", "")])
    );
    let e = err(&service("    environment:\n      A: [1]\n"));
    assert_eq!(e.at, at(5, 10));
    let e = err(&service("    environment: [\"=1\"]\n"));
    assert_eq!(e.at, at(4, 19));
}

#[test]
fn command_forms() {
    let c = ok(&service(
        r#"    command: sh -c 'echo "hi there"' "a \"b\"" c\ d  $$HOME
"#,
    ));
    assert_eq!(
        c.services[0].command,
        strings(&["sh", "-c", "echo \"hi there\"", "a \"b\"", "c d", "$HOME"])
    );
    let c = ok(&service(
        "    command:\n      - serve\n      - --port=${PORT}\n",
    ));
    assert_eq!(c.services[0].command, strings(&["serve", "--port=9000"]));
    assert_eq!(
        split_command("  ").unwrap_or_default(),
        Vec::<String>::new()
    );
    assert_eq!(
        split_command("a '' b").unwrap_or_default(),
        strings(&["a", "", "b"])
    );
    let e = err(&service("    command: echo 'oops\n"));
    assert_eq!(e.at, at(4, 14));
    assert!(e.message.starts_with("unterminated `'`"), "{e}");
    let e = err(&service("    command: [a, [b]]\n"));
    assert_eq!(e.at, at(4, 18));
}

#[test]
fn depends_on_forms() {
    let c = ok("services:
  a:
    image: a
    depends_on:
      b:
      c: { condition: service_completed_successfully }
      d: { condition: service_started }
  b: { image: b }
  c: { image: c }
  d: { image: d }
");
    let conds: Vec<(&str, Condition)> = c.services[0]
        .depends_on
        .iter()
        .map(|d| (d.service.as_str(), d.condition))
        .collect();
    assert_eq!(
        conds,
        [
            ("b", Condition::Started),
            ("c", Condition::CompletedSuccessfully),
            ("d", Condition::Started)
        ]
    );
    let e = err(
        "services:\n  a:\n    image: a\n    depends_on:\n      b: { condition: service_ready }\n  b: { image: b }\n",
    );
    assert_eq!(e.at, at(5, 23));
    assert_eq!(e.message, "unknown depends_on condition `service_ready`");
    let e = err(
        "services:\n  a:\n    image: a\n    depends_on:\n      b: { restart: true }\n  b: { image: b }\n",
    );
    assert_eq!(e.at, at(5, 12));
    let e = err(
        "services:\n  a:\n    image: a\n    depends_on:\n      b: { condition: service_healthy }\n  b: { image: b }\n",
    );
    assert_eq!(e.at, at(5, 7));
    assert_eq!(
        e.message,
        "service `a` waits for `b` to be healthy, but `b` has no healthcheck"
    );
    let e = err("services:\n  a:\n    image: a\n    depends_on: [b, b]\n  b: { image: b }\n");
    assert_eq!(e.at, at(4, 21));
}

#[test]
fn healthcheck_forms() {
    let c = ok(&service(
        "    healthcheck:\n      test: curl -f http://localhost/ || exit 1\n",
    ));
    assert_eq!(
        c.services[0].healthcheck,
        Some(Healthcheck {
            test: strings(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"]),
            interval_ms: 30_000,
            timeout_ms: 30_000,
            retries: 3,
            start_period_ms: 0,
        })
    );
    let c = ok(&service(
        "    healthcheck:\n      disable: true\n      interval: 5s\n",
    ));
    let h = c.services[0].healthcheck.as_ref();
    assert_eq!(h.map(|h| h.test.clone()), Some(strings(&["NONE"])));
    assert!(h.is_some_and(Healthcheck::is_disabled));
    let c = ok(&service(
        "    healthcheck:\n      test: [NONE]\n      start_period: 1m\n",
    ));
    let h = c.services[0].healthcheck.as_ref();
    assert_eq!(
        h.map(|h| (h.is_disabled(), h.start_period_ms)),
        Some((true, 60_000))
    );

    let e = err(&service("    healthcheck:\n      test: [\"CMD\"]\n"));
    assert_eq!(e.at, at(5, 13));
    let e = err(&service(
        "    healthcheck:\n      test: [\"CMD-SHELL\", a, b]\n",
    ));
    assert_eq!(e.at, at(5, 13));
    let e = err(&service("    healthcheck:\n      interval: 1s\n"));
    assert_eq!(e.at, at(4, 5));
    assert_eq!(e.message, "healthcheck without `test`");
    let e = err(&service(
        "    healthcheck:\n      test: exit 0\n      disable: true\n",
    ));
    assert_eq!(e.at, at(6, 7));
    let e = err(&service(
        "    healthcheck:\n      test: exit 0\n      retries: -1\n",
    ));
    assert_eq!(e.at, at(6, 16));
    let e = err(&service(
        "    healthcheck:\n      test: exit 0\n      start_interval: 1s\n",
    ));
    assert_eq!(e.at, at(6, 7));
}

#[test]
fn volume_forms() {
    let c = ok(r#"services:
  s:
    image: app
    volumes:
      - data:/data
      - logs:/var/log:ro
      - ./conf:/etc/app:ro
      - /srv/shared:/shared:rw
      - ~/cache:/cache
      - type: volume
        source: data
        target: /data2
        read_only: true
      - type: bind
        source: ../x
        target: /x
volumes:
  data:
  logs: {}
"#);
    let v = |name: &str, target: &str, read_only: bool, line: u32| Mount::Volume {
        name: name.into(),
        target: target.into(),
        read_only,
        at: Pos { line, col: 9 },
    };
    let b = |source: &str, target: &str, read_only: bool, line: u32| Mount::Bind {
        source: source.into(),
        target: target.into(),
        read_only,
        at: Pos { line, col: 9 },
    };
    assert_eq!(
        c.services[0].volumes,
        [
            v("data", "/data", false, 5),
            v("logs", "/var/log", true, 6),
            b("./conf", "/etc/app", true, 7),
            b("/srv/shared", "/shared", false, 8),
            b("~/cache", "/cache", false, 9),
            v("data", "/data2", true, 10),
            b("../x", "/x", false, 14),
        ]
    );
    assert_eq!(c.volumes, strings(&["data", "logs"]));
}

#[test]
fn volume_rejections() {
    let e = err(&service("    volumes: [\"missing:/data\"]\n"));
    assert_eq!(e.at, at(4, 15));
    assert_eq!(e.message, "volume `missing` is not declared");
    let e = err(&service("    volumes: [\"/data\"]\n"));
    assert_eq!(
        e.message,
        "bad volume `/data`: anonymous volumes are not supported"
    );
    let e = err(&service("    volumes: [\"./x:/y:z\"]\n"));
    assert_eq!(
        e.message,
        "bad volume `./x:/y:z`: unsupported mode `z` (valero's compose supports: ro, rw)"
    );
    let e = err(&service("    volumes: [\"./x:relative\"]\n"));
    assert!(e.message.contains("must be an absolute path"), "{e}");
    let e =
        err("services:\n  s:\n    image: a\n    volumes: [\"d:/x\", \"./d:/x\"]\nvolumes:\n  d:\n");
    assert_eq!(e.at, at(4, 23));
    assert_eq!(e.message, "two volumes mounted at `/x`");
    let e = err(&service(
        "    volumes:\n      - type: tmpfs\n        source: x\n        target: /t\n",
    ));
    assert_eq!(e.at, at(5, 15));
    let e = err(&service(
        "    volumes:\n      - type: volume\n        target: /t\n",
    ));
    assert_eq!(e.at, at(5, 9));
    assert_eq!(e.message, "volume without `source`");
}

#[test]
fn networks() {
    let c = ok("services:
  s:
    image: app
    networks:
      front:
        aliases: [web, www]
      back:
      default:
networks:
  front: { driver: bridge }
  back:
");
    let n: Vec<(&str, Vec<String>)> = c.services[0]
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n.aliases.clone()))
        .collect();
    assert_eq!(
        n,
        [
            ("front", strings(&["web", "www"])),
            ("back", vec![]),
            ("default", vec![])
        ]
    );
    assert_eq!(c.networks, strings(&["front", "back"]));

    let e = err(&service("    networks: [nope]\n"));
    assert_eq!(e.at, at(4, 16));
    assert_eq!(e.message, "network `nope` is not declared");
    let e = err("services:\n  s:\n    image: a\nnetworks:\n  n: { driver: overlay }\n");
    assert_eq!(e.at, at(5, 16));
    let e = err("services:\n  s:\n    image: a\nnetworks:\n  n: { external: true }\n");
    assert_eq!(e.at, at(5, 8));
    let e = err(
        "services:\n  s:\n    image: a\n    network_mode: host\n    networks: [n]\nnetworks:\n  n:\n",
    );
    assert_eq!(e.at, at(4, 5));
}

#[test]
fn restart_no_plain_and_quoted() {
    for (text, want) in [
        ("no", Restart::No),
        ("\"no\"", Restart::No),
        ("'no'", Restart::No),
        ("always", Restart::Always),
        ("on-failure", Restart::OnFailure),
        ("unless-stopped", Restart::UnlessStopped),
    ] {
        let c = ok(&service(&format!("    restart: {text}\n")));
        assert_eq!(c.services[0].restart, want, "{text}");
    }
    let e = err(&service("    restart: on-failure:3\n"));
    assert_eq!(e.at, at(4, 14));
    let e = err(&service("    restart: false\n"));
    assert_eq!(e.message, "unsupported restart policy `false`");
}

#[test]
fn host_policy_fields_are_parsed_with_positions() {
    let c = ok(&service(
        "    privileged: true\n    cap_add: [NET_ADMIN, SYS_TIME]\n    network_mode: host\n    pid: host\n",
    ));
    let s = &c.services[0];
    assert!(s.privileged);
    assert_eq!(s.cap_add, strings(&["NET_ADMIN", "SYS_TIME"]));
    assert_eq!(s.network_mode.as_deref(), Some("host"));
    assert_eq!(s.pid.as_deref(), Some("host"));
    assert_eq!(s.key_at("privileged"), Some(Pos { line: 4, col: 5 }));
    assert_eq!(s.key_at("pid"), Some(Pos { line: 7, col: 5 }));
    let e = err(&service("    privileged: yes\n"));
    assert_eq!(e.at, at(4, 17));
    assert_eq!(e.message, "`privileged` must be true or false, found `yes`");
}

#[test]
fn top_level_checks() {
    let c = ok("version: \"3.8\"\nservices:\n  a:\n    image: a\n");
    assert_eq!((c.name, c.services.len()), (None, 1));

    let e = err("");
    assert_eq!(
        (e.at, e.to_string()),
        (
            None,
            "compose.yaml: empty compose file\n  hint: a compose file needs `services:`".into()
        )
    );
    let e = err("name: x\n");
    assert_eq!(e.at, at(1, 1));
    assert_eq!(e.message, "no `services:` in the compose file");
    let e = err("services: {}\n");
    assert_eq!(e.message, "`services` is empty");
    let e = err("name: My_App\nservices:\n  a:\n    image: a\n");
    assert_eq!(e.at, at(1, 7));
    let e = err("- a\n- b\n");
    assert_eq!(e.at, at(1, 1));
    let e = err("services:\n  a:\n    image: a\n---\nservices: {}\n");
    assert_eq!(e.at, at(4, 1));
    assert!(e.message.contains("more than one YAML document"));
}

#[test]
fn service_checks() {
    let e = err("services:\n  -bad:\n    image: a\n");
    assert_eq!(e.at, at(2, 3));
    assert_eq!(e.message, "invalid service name `-bad`");
    let e = err("services:\n  web:\n    command: serve\n");
    assert_eq!(e.at, at(2, 3));
    assert_eq!(e.message, "service `web` has no `image`");
    let e = err("services:\n  web:\n    image:\n");
    assert_eq!(e.at, at(3, 5));
    assert_eq!(
        e.message,
        "expected an image reference, found nothing (null)"
    );
    let e = err("services:\n  web:\n    image: [a]\n");
    assert_eq!(e.at, at(3, 12));
    let e = err("services:\n  web: nginx\n");
    assert_eq!(e.at, at(2, 8));
}

#[test]
fn yaml_problems_have_positions() {
    let e = err("services:\n  a:\n    image: [a\n    ports: []\n");
    assert_eq!(e.at.map(|p| p.line), Some(4));
    assert!(e.message.starts_with("invalid YAML: "), "{e}");
    let e = err(&service("    environment: *env\n"));
    assert_eq!(e.at, at(4, 18));
    let e = err(&service("    image2: !!str x\n"));
    assert!(e.message.contains("tags"), "{e}");
    let e = err(&service("    ? [a]\n    : b\n"));
    assert_eq!(e.message, "mapping keys must be plain strings");
    let deep = format!(
        "services:\n  a:\n    image: {}{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(err(&deep).message.contains("nested deeper"));
}

#[test]
fn suggestions_use_edit_distance() {
    assert_eq!(edit_distance("imgae", "image"), 1);
    assert_eq!(edit_distance("enviroment", "environment"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("port", "ports"), 1);
}
