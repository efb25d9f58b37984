use std::collections::VecDeque;

use serde_json::{Value, json};

use crate::ast::*;
use crate::run::{json_eq, predicate, short_url};
use crate::template::Template;
use crate::*;

fn p(src: &str) -> HurlFile {
    parse("t.hurl", src).unwrap_or_else(|e| panic!("{e}"))
}

fn perr(src: &str) -> ParseError {
    parse("t.hurl", src).expect_err("should be rejected")
}

fn vars(pairs: &[(&str, Value)]) -> Variables {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Replies with canned responses in order; records the requests.
#[derive(Default)]
struct Fake {
    replies: VecDeque<Result<Response, String>>,
    sent: Vec<Request>,
}

impl Fake {
    fn json(mut self, status: u16, body: Value) -> Self {
        self.replies.push_back(Ok(Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            duration_ms: 7,
        }));
        self
    }
    fn error(mut self, e: &str) -> Self {
        self.replies.push_back(Err(e.to_string()));
        self
    }
}

impl Transport for Fake {
    fn send(&mut self, request: &Request, _timeout_ms: u64) -> Result<Response, String> {
        self.sent.push(request.clone());
        self.replies
            .pop_front()
            .unwrap_or_else(|| Err("no more canned replies".into()))
    }
}

#[derive(Default)]
struct FakeClock {
    now: u64,
    slept: Vec<u64>,
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.now
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.slept.push(ms);
        self.now += ms;
    }
}

fn run(src: &str, fake: &mut Fake, opts: RunOptions) -> FileResult {
    let file = p(src);
    run_file(&file, &opts, fake, &mut FakeClock::default())
}

// ---------- parsing ----------

#[test]
fn parses_request_line_headers_and_comments() {
    let f = p(
        "# Title one\n# and two\nGET {{base}}/x?a=1 # trailing\nAccept: application/json\nX-Hash: a\\#b # c\n\n# lone comment\n\nPOST http://h/y\n",
    );
    assert_eq!(f.entries.len(), 2);
    let e = &f.entries[0];
    assert_eq!(e.line, 3);
    assert_eq!(e.title.as_deref(), Some("Title one and two"));
    assert_eq!(e.method, "GET");
    assert_eq!(e.url.source(), "{{base}}/x?a=1");
    assert_eq!(e.headers[0].0, "Accept");
    assert_eq!(e.headers[0].1.source(), "application/json");
    assert_eq!(e.headers[1].1.source(), "a#b");
    // A blank line separates a comment from the request line: no title.
    assert_eq!(f.entries[1].title, None);
}

#[test]
fn parses_sections_and_options() {
    let f = p(
        "GET http://h/x\n[Options]\nretry: -1\nretry-interval: 2s\ndelay: 500ms\nvariable: n=3\nvariable: s=abc-{{x}}\nvariable: q=\"quoted\"\n[QueryStringParams]\nq: a b\n[Query]\nr: 1\n[FormParams]\nf: v\n[BasicAuth]\nbob: secret\n",
    );
    let e = &f.entries[0];
    assert_eq!(e.options.retry, Some(-1));
    assert_eq!(e.options.retry_interval_ms, Some(2000));
    assert_eq!(e.options.delay_ms, Some(500));
    assert_eq!(
        e.options.variables[0],
        ("n".into(), OptionValue::Json(json!(3)))
    );
    assert!(
        matches!(&e.options.variables[1].1, OptionValue::Template(t) if t.source() == "abc-{{x}}")
    );
    assert_eq!(
        e.options.variables[2],
        ("q".into(), OptionValue::Json(json!("quoted")))
    );
    assert_eq!(e.query.len(), 2);
    assert_eq!(e.form[0].0, "f");
    assert_eq!(e.basic_auth.as_ref().unwrap().0, "bob");
}

#[test]
fn parses_bodies() {
    let f = p(
        "POST http://h/j\n{\n  \"a\": {{n}},\n  \"b\": \"x{{s}}\",\n  \"c\": [1, {\"d\": null}]\n}\nHTTP 201\n\nPOST http://h/m\n```\nline 1 {{s}}\nline 2\n```\n\nPOST http://h/o\n`one \\` line`\nHTTP *\n\nPOST http://h/a\n[1, 2]\n",
    );
    let Some(Body::Json(t)) = &f.entries[0].body else {
        panic!()
    };
    assert!(t.source().contains("\"a\": {{n}}"));
    assert_eq!(f.entries[0].response.as_ref().unwrap().status, Some(201));
    let Some(Body::Text(t)) = &f.entries[1].body else {
        panic!()
    };
    assert_eq!(t.source(), "line 1 {{s}}\nline 2\n");
    let Some(Body::Text(t)) = &f.entries[2].body else {
        panic!()
    };
    assert_eq!(t.source(), "one ` line");
    assert_eq!(f.entries[2].response.as_ref().unwrap().status, None);
    assert!(matches!(&f.entries[3].body, Some(Body::Json(_))));
}

#[test]
fn parses_response_versions_captures_and_asserts() {
    let f = p(
        "GET http://h/\nHTTP/1.1 200\nContent-Type: application/json\n[Captures]\nid: jsonpath \"$.id\"\nn: jsonpath \"$.items\" count\n[Asserts]\nstatus == 200\nheader \"X\" not exists\njsonpath \"$.a\" nth 0 >= 1.5\nbody contains \"ok\"\nduration < 500\nvariable \"id\" == {{id}}\njsonpath \"$.s\" matches /^a\\/b$/\njsonpath \"$.t\" not isEmpty # comment\n\nGET http://h/\nHTTP/2 404\n",
    );
    let r = f.entries[0].response.as_ref().unwrap();
    assert_eq!(r.version, "HTTP/1.1");
    assert_eq!(r.headers[0].name, "Content-Type");
    assert_eq!(r.captures[1].filters, vec![Filter::Count]);
    assert_eq!(r.asserts.len(), 8);
    assert!(r.asserts[1].predicate.not);
    assert_eq!(r.asserts[1].predicate.func, PredicateFunc::Exists);
    assert_eq!(r.asserts[2].filters, vec![Filter::Nth(0)]);
    assert_eq!(
        r.asserts[2].predicate.value,
        Some(PredicateValue::Float(1.5))
    );
    assert_eq!(r.asserts[4].query, Query::Duration);
    assert!(matches!(
        &r.asserts[5].predicate.value,
        Some(PredicateValue::Variable(_))
    ));
    assert_eq!(
        r.asserts[6].predicate.value,
        Some(PredicateValue::String(Template::literal("^a/b$")))
    );
    assert_eq!(r.asserts[7].text, "jsonpath \"$.t\" not isEmpty");
    assert_eq!(f.entries[1].response.as_ref().unwrap().status, Some(404));
}

#[test]
fn rejects_with_line_and_column() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "GET http://h/\n[Cookies]\na: b\n",
            2,
            1,
            "[Cookies] is not supported",
        ),
        (
            "GET http://h/\n[MultipartFormData]\n",
            2,
            1,
            "not supported",
        ),
        (
            "GET http://h/\nHTTP 200\n[Asserts]\nxpath \"//a\" exists\n",
            4,
            1,
            "query `xpath` is not supported",
        ),
        (
            "GET http://h/\nHTTP 200\n[Asserts]\ncertificate \"Subject\" exists\n",
            4,
            1,
            "query `certificate`",
        ),
        (
            "GET http://h/\nHTTP 200\n[Asserts]\njsonpath \"$.a\" toInt == 1\n",
            4,
            16,
            "filter `toInt` is not supported",
        ),
        (
            "GET http://h/\nHTTP 200\n[Asserts]\njsonpath \"$.a\" isDate\n",
            4,
            16,
            "predicate `isDate` is not supported",
        ),
        (
            "GET http://h/\nHTTP 200\n[Asserts]\njsonpath \"$.a\"\n",
            4,
            15,
            "expected a predicate",
        ),
        (
            "GET http://h/\nHTTP 200\n[Asserts]\njsonpath \"$[\" exists\n",
            4,
            10,
            "invalid JSONPath",
        ),
        (
            "GET http://h/\nHTTP 200\n[Asserts]\nbody matches \"(\"\n",
            4,
            14,
            "invalid regex",
        ),
        (
            "GET http://h/\n[Options]\ninsecure: true\n",
            3,
            1,
            "option `insecure` is not supported",
        ),
        (
            "GET http://h/\n[Options]\nretry: many\n",
            3,
            8,
            "retry takes an integer",
        ),
        (
            "GET http://h/\nHTTP 200\n[Asserts]\nstatus == 200 extra\n",
            4,
            15,
            "unexpected `extra`",
        ),
        ("POST http://h/\n{\"a\": 1,}\n", 2, 9, "invalid JSON body"),
        (
            "POST http://h/\n{\"a\": 1\n",
            2,
            1,
            "unterminated JSON body",
        ),
        (
            "GET http://h/\nHTTP 200\n{\"a\": 1}\n",
            3,
            1,
            "response body",
        ),
        ("GET http://h/\nHTTP 2000\n", 2, 6, "status code"),
        ("GET http://h/{{a b}}\n", 1, 14, "invalid template"),
        ("   nonsense\n", 1, 4, "expected a request line"),
        (
            "GET http://h/\nHTTP 200\n[Options]\nretry: 1\n",
            3,
            1,
            "request section",
        ),
        ("GET http://h/\n[Asserts]\n", 2, 1, "response section"),
        (
            "POST http://h/\n```graphql\n{}\n```\n",
            2,
            4,
            "not supported",
        ),
        ("GET ftp://h/\n", 1, 5, "http:// or https://"),
        (
            "GET http://h/\nHTTP 200\n[Captures]\nid: xpath \"//a\"\n",
            4,
            5,
            "query `xpath`",
        ),
        (
            "GET http://h/\nHTTP 200\n[Captures]\nid: jsonpath \"$.a\" redact\n",
            4,
            20,
            "unexpected `redact`",
        ),
    ];
    for (src, line, col, needle) in cases {
        let e = perr(src);
        assert_eq!((e.line, e.col), (*line, *col), "{src:?}: {e}");
        assert!(e.message.contains(needle), "{src:?}: {e}");
        assert!(e.to_string().starts_with(&format!("t.hurl:{line}:{col}: ")));
    }
    // The message says what is supported.
    assert!(
        perr("GET http://h/\nHTTP 200\n[Asserts]\nxpath \"x\" exists\n")
            .message
            .contains("jsonpath")
    );
}

// ---------- templates ----------

#[test]
fn template_expansion() {
    let f = p(
        "POST {{base}}/c/{{ id }}\nAuthorization: Bearer {{tok}}\n{\"id\": {{id}}, \"name\": \"n-{{name}}\", \"flag\": {{flag}}}\n",
    );
    let v = vars(&[
        ("base", json!("http://h")),
        ("id", json!(7)),
        ("tok", json!("T")),
        ("name", json!("a\"b")),
        ("flag", json!(true)),
    ]);
    let mut fake = Fake::default().json(200, json!({}));
    let r = run_file(
        &f,
        &RunOptions {
            variables: v,
            ..Default::default()
        },
        &mut fake,
        &mut FakeClock::default(),
    );
    assert_eq!(r.entries[0].state, EntryState::Passed);
    let sent = &fake.sent[0];
    assert_eq!(sent.url, "http://h/c/7");
    assert!(
        sent.headers
            .contains(&("Authorization".into(), "Bearer T".into()))
    );
    assert!(
        sent.headers
            .contains(&("Content-Type".into(), "application/json".into()))
    );
    let body: Value = serde_json::from_slice(sent.body.as_ref().unwrap()).unwrap();
    assert_eq!(body, json!({"id": 7, "name": "n-a\"b", "flag": true}));
}

#[test]
fn new_uuid_query_form_and_basic_auth() {
    let src = "POST http://h/x\n[Query]\nq: a b&c\n[Form]\nk: v/w\n[BasicAuth]\nbob: s3cret\n\nGET http://h/{{newUuid}}\n";
    let mut fake = Fake::default().json(200, json!({})).json(200, json!({}));
    run(src, &mut fake, RunOptions::default());
    assert_eq!(fake.sent[0].url, "http://h/x?q=a%20b%26c");
    assert_eq!(fake.sent[0].body.as_deref(), Some(&b"k=v%2Fw"[..]));
    assert!(
        fake.sent[0]
            .headers
            .contains(&("Authorization".into(), "Basic Ym9iOnMzY3JldA==".into()))
    );
    let uuid = fake.sent[1].url.trim_start_matches("http://h/");
    assert_eq!(uuid.len(), 36);
    assert_eq!(&uuid[14..15], "4");
}

#[test]
fn unset_variable_is_reported_with_the_failed_capture() {
    let src = "GET http://h/a\nHTTP 200\n[Captures]\nid: jsonpath \"$.missing\"\n\nGET http://h/b/{{id}}\n\nGET http://h/c/{{other}}\n";
    let mut fake = Fake::default().json(200, json!({"x": 1}));
    let r = run(src, &mut fake, RunOptions::default());
    assert_eq!(r.entries[0].state, EntryState::Failed);
    let e = r.entries[1].error.as_deref().unwrap();
    assert!(e.contains("variable `id` is not set"), "{e}");
    assert!(e.contains("t.hurl:4:1"), "{e}");
    let e = r.entries[2].error.as_deref().unwrap();
    assert!(
        e.contains("variable `other` is not set") && e.contains("variables"),
        "{e}"
    );
    assert_eq!(fake.sent.len(), 1);
}

// ---------- queries, jsonpath, predicates ----------

#[test]
fn jsonpath_unwrapping() {
    let doc = json!({"a": [{"id": 1}, {"id": 2}], "one": [{"id": 5}], "s": "x"});
    let q = |p: &str| {
        let path = serde_json_path::JsonPath::parse(p).unwrap();
        run::jsonpath_value(&path, &doc)
    };
    assert_eq!(q("$.s"), Some(json!("x")));
    assert_eq!(q("$.a[*].id"), Some(json!([1, 2])));
    assert_eq!(q("$.one[*].id"), Some(json!(5)));
    assert_eq!(q("$.nope"), None);
    assert_eq!(q("$.a[?@.id == 2].id"), Some(json!(2)));
}

#[test]
fn each_predicate() {
    use PredicateFunc::*;
    let t = |f, a: Value, e: Value| predicate(f, Some(&a), Some(&e)).unwrap();
    assert!(t(Eq, json!(1), json!(1.0)));
    assert!(t(Eq, json!({"a": [1]}), json!({"a": [1.0]})));
    assert!(!t(Eq, json!("1"), json!(1)));
    assert!(t(Ne, json!(1), json!(2)));
    assert!(t(Gt, json!(3), json!(2)) && !t(Gt, json!(2), json!(2)));
    assert!(t(Ge, json!(2), json!(2)));
    assert!(t(Lt, json!(1.5), json!(2)));
    assert!(t(Le, json!("a"), json!("b")));
    assert!(!t(Gt, json!("3"), json!(2)));
    assert!(t(Contains, json!("hello"), json!("ell")));
    assert!(t(Contains, json!([1, 2]), json!(2)));
    assert!(t(StartsWith, json!("hello"), json!("he")));
    assert!(t(EndsWith, json!("hello"), json!("lo")));
    assert!(t(Matches, json!("2024-01-02"), json!("^\\d{4}-")));
    assert!(predicate(Matches, Some(&json!("x")), Some(&json!("("))).is_err());
    let u = |f, a: Value| predicate(f, Some(&a), None).unwrap();
    assert!(u(Exists, json!(null)));
    assert!(!predicate(Exists, None, None).unwrap());
    assert!(u(IsInteger, json!(3)) && !u(IsInteger, json!(3.5)));
    assert!(u(IsFloat, json!(3.5)) && !u(IsFloat, json!(3)));
    assert!(u(IsNumber, json!(3)) && u(IsNumber, json!(3.5)) && !u(IsNumber, json!("3")));
    assert!(u(IsBoolean, json!(false)));
    assert!(u(IsString, json!("")));
    assert!(
        u(IsCollection, json!([])) && u(IsCollection, json!({})) && !u(IsCollection, json!("a"))
    );
    assert!(u(IsEmpty, json!([])) && u(IsEmpty, json!("")) && !u(IsEmpty, json!([1])));
    // No value: only `exists` can hold.
    assert!(!predicate(Eq, None, Some(&json!(1))).unwrap());
    assert!(json_eq(&json!([1, 2.0]), &json!([1.0, 2])));
}

#[test]
fn asserts_against_a_response() {
    let src = r#"GET http://h/
HTTP 200
Content-Type: application/json
[Captures]
first: jsonpath "$.items[0].id"
[Asserts]
status == 200
header "content-type" == "application/json"
header "X-None" not exists
jsonpath "$.items" count == 2
jsonpath "$.items" nth -1 isCollection
jsonpath "$.items[*].id" contains 2
jsonpath "$.items[0].id" == {{first}}
variable "first" == 1
jsonpath "$.name" not == "bob"
body contains "alice"
duration < 100
jsonpath "$.missing" not exists
jsonpath "$.name" == "bob"
jsonpath "$.long" == "short"
"#;
    let long = "y".repeat(500);
    let mut fake = Fake::default().json(
        200,
        json!({"items": [{"id": 1}, {"id": 2}], "name": "alice", "long": long}),
    );
    let r = run(src, &mut fake, RunOptions::default());
    let e = &r.entries[0];
    let failed: Vec<_> = e.asserts.iter().filter(|a| !a.pass).collect();
    assert_eq!(failed.len(), 2, "{:#?}", e.asserts);
    assert_eq!(failed[0].text, "jsonpath \"$.name\" == \"bob\"");
    assert_eq!(failed[0].expected, "\"bob\"");
    assert_eq!(failed[0].actual, "\"alice\"");
    assert_eq!((failed[0].line, failed[0].col), (19, 1));
    assert!(
        failed[1].actual.contains("… (502 chars)"),
        "{}",
        failed[1].actual
    );
    let msg = e.failure_message();
    assert!(msg.contains("expected \"bob\", actual \"alice\""), "{msg}");
    assert_eq!(e.captures[0].value, Some(json!(1)));
    assert_eq!(e.state, EntryState::Failed);
}

#[test]
fn status_mismatch_shows_the_body() {
    let mut fake = Fake::default().json(422, json!({"error": "unbalanced"}));
    let r = run(
        "POST http://h/\nHTTP 201\n",
        &mut fake,
        RunOptions::default(),
    );
    let a = &r.entries[0].asserts[0];
    assert!(!a.pass);
    assert_eq!(a.expected, "201");
    assert!(
        a.actual
            .starts_with("422 (body: {\"error\":\"unbalanced\"})"),
        "{}",
        a.actual
    );
}

// ---------- runner ----------

#[test]
fn captures_feed_later_entries() {
    let src = "POST http://h/login\nHTTP 200\n[Captures]\ntoken: jsonpath \"$.token\"\nid: jsonpath \"$.id\"\n\nGET http://h/c/{{id}}\nAuthorization: Bearer {{token}}\nHTTP 200\n[Asserts]\njsonpath \"$.id\" == {{id}}\n";
    let mut fake = Fake::default()
        .json(200, json!({"token": "abc", "id": 42}))
        .json(200, json!({"id": 42}));
    let r = run(src, &mut fake, RunOptions::default());
    assert!(r.passed, "{:#?}", r);
    assert_eq!(fake.sent[1].url, "http://h/c/42");
    assert!(
        fake.sent[1]
            .headers
            .contains(&("Authorization".into(), "Bearer abc".into()))
    );
}

#[test]
fn retry_until_pass() {
    let src = "GET http://h/journal\n[Options]\nretry: 5\nretry-interval: 250ms\nHTTP 200\n[Asserts]\njsonpath \"$\" count >= 1\n";
    let mut fake = Fake::default()
        .error("connection refused")
        .json(200, json!([]))
        .json(200, json!([{"id": 1}]));
    let mut clock = FakeClock::default();
    let r = run_file(&p(src), &RunOptions::default(), &mut fake, &mut clock);
    assert_eq!(r.entries[0].state, EntryState::Passed);
    assert_eq!(r.entries[0].attempts, 3);
    assert_eq!(clock.slept, vec![250, 250]);
    assert_eq!(r.entries[0].elapsed_ms, 500);
}

#[test]
fn retry_gives_up() {
    let src = "GET http://h/\n[Options]\nretry: 2\nHTTP 200\n";
    let mut fake = Fake::default()
        .json(500, json!({}))
        .json(500, json!({}))
        .json(500, json!({}));
    let mut clock = FakeClock::default();
    let r = run_file(&p(src), &RunOptions::default(), &mut fake, &mut clock);
    assert_eq!(r.entries[0].attempts, 3);
    assert_eq!(clock.slept, vec![1000, 1000]);
    assert!(r.entries[0].failure_message().contains("after 3 attempts"));
}

#[test]
fn unlimited_retry_stops_at_the_deadline() {
    let src = "GET http://h/\n[Options]\nretry: -1\nretry-interval: 1s\nHTTP 200\n";
    let mut fake = Fake::default();
    for _ in 0..100 {
        fake = fake.json(503, json!({}));
    }
    let mut clock = FakeClock::default();
    let opts = RunOptions {
        deadline_ms: Some(5000),
        ..Default::default()
    };
    let r = run_file(&p(src), &opts, &mut fake, &mut clock);
    assert_eq!(r.entries[0].attempts, 5);
    assert!(r.entries[0].error.as_deref().unwrap().contains("deadline"));
}

#[test]
fn stop_on_failure_marks_later_entries_not_run() {
    let src = "# Log in\nGET http://h/1\nHTTP 200\n\n# Sell\nGET http://h/2\nHTTP 201\n\n# Book\nGET http://h/3\n\nGET http://h/4\n";
    let mut fake = Fake::default().json(200, json!({})).json(500, json!({}));
    let r = run(
        src,
        &mut fake,
        RunOptions {
            stop_on_failure: true,
            ..Default::default()
        },
    );
    let states: Vec<_> = r.entries.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        vec![
            EntryState::Passed,
            EntryState::Failed,
            EntryState::NotRun,
            EntryState::NotRun
        ]
    );
    assert_eq!(
        r.entries[2].error.as_deref(),
        Some("not run: step 2 (Sell) failed")
    );
    assert_eq!(r.entries[2].attempts, 0);
    assert_eq!(fake.sent.len(), 2);
    assert!(!r.passed);

    // Without it (api-test), later entries still run.
    let mut fake = Fake::default()
        .json(200, json!({}))
        .json(500, json!({}))
        .json(200, json!({}))
        .json(200, json!({}));
    let r = run(src, &mut fake, RunOptions::default());
    assert_eq!(
        r.entries
            .iter()
            .filter(|e| e.state == EntryState::Passed)
            .count(),
        3
    );
}

#[test]
fn offsets_durations_and_delay() {
    let src = "GET http://h/1\n\nGET http://h/2\n[Options]\ndelay: 2s\n";
    let mut fake = Fake::default().json(200, json!({})).json(200, json!({}));
    let mut clock = FakeClock {
        now: 1000,
        slept: vec![],
    };
    let r = run_file(&p(src), &RunOptions::default(), &mut fake, &mut clock);
    assert_eq!(r.entries[0].started_ms, 0);
    assert_eq!(r.entries[1].started_ms, 2000);
    assert_eq!(r.entries[1].duration_ms, Some(7));
    assert_eq!(r.duration_ms, 2000);
}

#[test]
fn option_variables() {
    let src = "GET http://h/{{k}}/{{n}}\n[Options]\nvariable: k=key-{{base}}\nvariable: n=5\n\nGET http://h/{{k}}\n";
    let mut fake = Fake::default().json(200, json!({})).json(200, json!({}));
    run(
        src,
        &mut fake,
        RunOptions {
            variables: vars(&[("base", json!("b"))]),
            ..Default::default()
        },
    );
    assert_eq!(fake.sent[0].url, "http://h/key-b/5");
    assert_eq!(fake.sent[1].url, "http://h/key-b");
}

#[test]
fn short_urls_for_check_names() {
    assert_eq!(
        short_url("{{gateway}}/api/crm/customers"),
        "/api/crm/customers"
    );
    assert_eq!(short_url("http://127.0.0.1:1/x?y=1"), "/x?y=1");
    assert_eq!(short_url("http://h"), "/");
}

#[test]
fn the_checked_in_suites_parse() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/neuroerp");
    for dir in ["api", "e2e"] {
        let loaded = files::load(&[format!("{root}/{dir}")]).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!loaded.is_empty());
        for l in loaded {
            assert!(
                l.file.entries.iter().all(|e| e.response.is_some()),
                "{}",
                l.file_name
            );
        }
    }
}

/// Found by fuzzing (fuzz/regressions/jsonpath): serde_json_path panics on a
/// `\u` escape cut short at the end of the text; the guard refuses it first.
#[test]
fn a_cut_short_unicode_escape_in_jsonpath_is_an_error_not_a_panic() {
    let err = run::compile_jsonpath("$['a \\u").unwrap_err();
    assert!(err.contains("four hex digits"), "{err}");
    assert!(run::compile_jsonpath("$['a \\u12").is_err());
    // Complete escapes, and an escaped backslash before a `u`, still parse.
    assert!(run::compile_jsonpath("$['\\u0041']").is_ok());
    assert!(run::compile_jsonpath("$['a\\\\u']").is_ok());
}
