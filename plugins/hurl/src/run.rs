//! Runs a parsed file against a [`Transport`] and a [`Clock`].

use std::cell::OnceCell;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::ast::*;
use crate::template::{RenderError, Template, Variables, lookup, value_to_text};

/// One HTTP request, fully expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// What the transport got back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Time from sending the request to the end of the response body.
    pub duration_ms: u64,
}

/// Sends one request, bounded by `timeout_ms`. Errors are connection failures,
/// timeouts, denials — any HTTP status is a response.
pub trait Transport {
    fn send(&mut self, request: &Request, timeout_ms: u64) -> Result<Response, String>;
}

/// Monotonic time and sleeping (fakes in tests; the real clock in the guest).
pub trait Clock {
    fn now_ms(&self) -> u64;
    fn sleep_ms(&mut self, ms: u64);
}

/// How to run a file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Initial variables (captures are added as the file runs).
    pub variables: Variables,
    /// Stop at the first failing entry; later entries are reported as not run (e2e).
    pub stop_on_failure: bool,
    /// Timeout of one request.
    pub request_timeout_ms: u64,
    /// No retry starts after this instant of [`Clock::now_ms`] (bounds `retry: -1`).
    pub deadline_ms: Option<u64>,
    /// `retry-interval` when an entry does not set one (Hurl's default: 1000 ms).
    pub default_retry_interval_ms: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            variables: Variables::new(),
            stop_on_failure: false,
            request_timeout_ms: 5000,
            deadline_ms: None,
            default_retry_interval_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Passed,
    Failed,
    NotRun,
}

impl EntryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::NotRun => "not_run",
        }
    }
}

/// One assert (explicit, or implicit: status and response headers), as last evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssertResult {
    pub line: usize,
    pub col: usize,
    /// The assert as written, e.g. `jsonpath "$.id" isInteger` or `HTTP 201`.
    pub text: String,
    pub expected: String,
    pub actual: String,
    pub pass: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptureResult {
    pub line: usize,
    pub col: usize,
    pub name: String,
    /// The query as written, e.g. `jsonpath "$.id"`.
    pub text: String,
    pub value: Option<Value>,
    pub pass: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryResult {
    /// 1-based position of the entry in its file.
    pub index: usize,
    pub line: usize,
    pub title: Option<String>,
    pub method: String,
    /// The expanded URL (the source form if it was never expanded).
    pub url: String,
    /// The URL as written.
    pub url_source: String,
    pub state: EntryState,
    pub status: Option<u16>,
    /// Duration of the last attempt's request.
    pub duration_ms: Option<u64>,
    /// When the entry started, from the start of the file.
    pub started_ms: u64,
    /// Time spent on the entry including delay and retries.
    pub elapsed_ms: u64,
    pub attempts: u32,
    pub asserts: Vec<AssertResult>,
    pub captures: Vec<CaptureResult>,
    /// Transport error, unset variable, or why it was not run.
    pub error: Option<String>,
}

impl EntryResult {
    /// What went wrong (empty when passed): the error, then each failed capture and assert.
    pub fn failure_message(&self) -> String {
        let mut parts = Vec::new();
        if let Some(e) = &self.error {
            parts.push(e.clone());
        }
        for c in self.captures.iter().filter(|c| !c.pass) {
            parts.push(format!(
                "capture `{}: {}` (line {}:{}) failed: {}",
                c.name,
                c.text,
                c.line,
                c.col,
                c.error.as_deref().unwrap_or("no value")
            ));
        }
        for a in self.asserts.iter().filter(|a| !a.pass) {
            parts.push(format!(
                "assert `{}` (line {}:{}) failed: expected {}, actual {}",
                a.text, a.line, a.col, a.expected, a.actual
            ));
        }
        let mut msg = parts.join("; ");
        if self.state == EntryState::Failed && self.attempts > 1 {
            msg.push_str(&format!(
                " (after {} attempts in {} ms)",
                self.attempts, self.elapsed_ms
            ));
        }
        msg
    }

    /// `METHOD /path` of the URL as written, without a leading `{{base}}` or scheme://host.
    pub fn short_target(&self) -> String {
        format!("{} {}", self.method, short_url(&self.url_source))
    }
}

/// `{{gateway}}/api/x` → `/api/x`; `http://h:1/api/x` → `/api/x`.
pub fn short_url(source: &str) -> String {
    let rest = if let Some(r) = source.strip_prefix("{{") {
        r.split_once("}}").map(|(_, r)| r).unwrap_or(r)
    } else if let Some((_, r)) = source.split_once("://") {
        r.find('/').map(|i| &r[i..]).unwrap_or("/")
    } else {
        source
    };
    if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileResult {
    pub file: String,
    pub passed: bool,
    pub duration_ms: u64,
    pub entries: Vec<EntryResult>,
}

/// Runs every entry of `file`.
pub fn run_file(
    file: &HurlFile,
    options: &RunOptions,
    transport: &mut dyn Transport,
    clock: &mut dyn Clock,
) -> FileResult {
    let start = clock.now_ms();
    let mut vars = options.variables.clone();
    // Variable → where its capture failed (or was never run).
    let mut failed_captures: BTreeMap<String, String> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut stopped: Option<String> = None;
    for (i, entry) in file.entries.iter().enumerate() {
        let index = i + 1;
        if let Some(reason) = &stopped {
            entries.push(not_run(index, entry, reason));
            continue;
        }
        let result = run_entry(
            file,
            index,
            entry,
            options,
            &mut vars,
            &mut failed_captures,
            transport,
            clock,
            start,
        );
        if result.state == EntryState::Failed && options.stop_on_failure {
            let title = entry.title.clone().unwrap_or_else(|| result.short_target());
            stopped = Some(format!("not run: step {index} ({title}) failed"));
        }
        entries.push(result);
    }
    FileResult {
        file: file.name.clone(),
        passed: entries.iter().all(|e| e.state == EntryState::Passed),
        duration_ms: clock.now_ms().saturating_sub(start),
        entries,
    }
}

fn not_run(index: usize, entry: &Entry, reason: &str) -> EntryResult {
    EntryResult {
        index,
        line: entry.line,
        title: entry.title.clone(),
        method: entry.method.clone(),
        url: entry.url.source(),
        url_source: entry.url.source(),
        state: EntryState::NotRun,
        status: None,
        duration_ms: None,
        started_ms: 0,
        elapsed_ms: 0,
        attempts: 0,
        asserts: Vec::new(),
        captures: Vec::new(),
        error: Some(reason.to_string()),
    }
}

struct Attempt {
    url: Option<String>,
    status: Option<u16>,
    duration_ms: Option<u64>,
    asserts: Vec<AssertResult>,
    captures: Vec<CaptureResult>,
    error: Option<String>,
    /// A template used a variable that is not set.
    unset: Option<RenderError>,
    /// Worth trying again (a transport error or a failed assert/capture).
    retryable: bool,
    new_vars: Variables,
}

impl Attempt {
    fn passed(&self) -> bool {
        self.error.is_none()
            && self.unset.is_none()
            && self.asserts.iter().all(|a| a.pass)
            && self.captures.iter().all(|c| c.pass)
    }
}

#[allow(clippy::too_many_arguments)]
fn run_entry(
    file: &HurlFile,
    index: usize,
    entry: &Entry,
    options: &RunOptions,
    vars: &mut Variables,
    failed_captures: &mut BTreeMap<String, String>,
    transport: &mut dyn Transport,
    clock: &mut dyn Clock,
    file_start: u64,
) -> EntryResult {
    let entry_start = clock.now_ms();
    let mut result = not_run(index, entry, "");
    result.error = None;
    result.state = EntryState::Failed;
    result.started_ms = entry_start.saturating_sub(file_start);

    let unset = |e: RenderError, failed: &BTreeMap<String, String>| -> String {
        let mut msg = format!(
            "variable `{}` is not set (used at {}:{}:{})",
            e.variable, file.name, e.line, e.col
        );
        match failed.get(&e.variable) {
            Some(why) => msg.push_str(&format!("; {why}")),
            None => msg
                .push_str("; give it in the stage's `variables` or capture it in an earlier entry"),
        }
        msg
    };

    // [Options] variables.
    for (name, value) in &entry.options.variables {
        let v = match value {
            OptionValue::Json(v) => v.clone(),
            OptionValue::Template(t) => match render_typed(t, vars) {
                Ok(v) => v,
                Err(e) => {
                    result.error = Some(unset(e, failed_captures));
                    result.elapsed_ms = clock.now_ms().saturating_sub(entry_start);
                    return result;
                }
            },
        };
        vars.insert(name.clone(), v);
        failed_captures.remove(name);
    }

    if let Some(delay) = entry.options.delay_ms {
        clock.sleep_ms(delay);
    }
    result.started_ms = clock.now_ms().saturating_sub(file_start);

    let retry = entry.options.retry.unwrap_or(0);
    let interval = entry
        .options
        .retry_interval_ms
        .unwrap_or(options.default_retry_interval_ms);
    let mut attempts = 0u32;
    let outcome = loop {
        attempts += 1;
        let outcome = attempt(entry, options, vars, transport);
        if outcome.passed() || !outcome.retryable {
            break outcome;
        }
        let retries_done = i64::from(attempts - 1);
        if retry >= 0 && retries_done >= retry {
            break outcome;
        }
        if let Some(deadline) = options.deadline_ms
            && clock.now_ms() + interval >= deadline
        {
            let mut outcome = outcome;
            let note = "retries stopped: the run's deadline was reached".to_string();
            outcome.error = Some(match outcome.error {
                Some(e) => format!("{e}; {note}"),
                None => note,
            });
            break outcome;
        }
        clock.sleep_ms(interval);
    };

    result.attempts = attempts;
    result.status = outcome.status;
    result.duration_ms = outcome.duration_ms;
    if let Some(url) = &outcome.url {
        result.url = url.clone();
    }
    let passed = outcome.passed();
    result.error = match outcome.unset {
        Some(e) => Some(unset(e, failed_captures)),
        None => outcome.error,
    };
    for c in &outcome.captures {
        if !c.pass {
            failed_captures.insert(
                c.name.clone(),
                format!(
                    "its capture at {}:{}:{} (`{}`) failed: {}",
                    file.name,
                    c.line,
                    c.col,
                    c.text,
                    c.error.as_deref().unwrap_or("no value")
                ),
            );
        }
    }
    // Captures that were taken count even when an assert of the entry failed:
    // the request happened (an order created is created), later entries may use it.
    for (k, v) in outcome.new_vars {
        failed_captures.remove(&k);
        vars.insert(k, v);
    }
    // Captures never evaluated (no response): say so when they are used.
    if let Some(resp) = &entry.response {
        for c in &resp.captures {
            if !outcome.captures.iter().any(|r| r.name == c.name) {
                failed_captures.entry(c.name.clone()).or_insert_with(|| {
                    format!(
                        "its capture at {}:{}:{} was not taken: that request failed",
                        file.name, c.pos.line, c.pos.col
                    )
                });
            }
        }
    }
    result.asserts = outcome.asserts;
    result.captures = outcome.captures;
    result.state = if passed {
        EntryState::Passed
    } else {
        EntryState::Failed
    };
    result.elapsed_ms = clock.now_ms().saturating_sub(entry_start);
    result
}

/// A template that is exactly `{{name}}` keeps the variable's type; otherwise a string.
fn render_typed(t: &Template, vars: &Variables) -> Result<Value, RenderError> {
    if let Some(name) = t.single_expr() {
        let crate::template::Part::Expr { line, col, .. } = &t.parts[0] else {
            unreachable!()
        };
        return lookup(name, vars).ok_or_else(|| RenderError {
            variable: name.to_string(),
            line: *line,
            col: *col,
        });
    }
    t.render(vars).map(Value::String)
}

fn build_request(entry: &Entry, vars: &Variables) -> Result<Request, RenderError> {
    let mut url = entry.url.render(vars)?;
    if !entry.query.is_empty() {
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in &entry.query {
            url.push(sep);
            url.push_str(&percent_encode(k));
            url.push('=');
            url.push_str(&percent_encode(&v.render(vars)?));
            sep = '&';
        }
    }
    let mut headers = Vec::new();
    for (k, v) in &entry.headers {
        headers.push((k.clone(), v.render(vars)?));
    }
    let has = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if let Some((user, password)) = &entry.basic_auth {
        let cred = format!("{user}:{}", password.render(vars)?);
        headers.push((
            "Authorization".to_string(),
            format!("Basic {}", base64(cred.as_bytes())),
        ));
    }
    let mut body = None;
    if !entry.form.is_empty() {
        let mut form = Vec::new();
        for (k, v) in &entry.form {
            form.push(format!(
                "{}={}",
                percent_encode(k),
                percent_encode(&v.render(vars)?)
            ));
        }
        body = Some(form.join("&").into_bytes());
        if !has(&headers, "content-type") {
            headers.push((
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ));
        }
    }
    match &entry.body {
        Some(Body::Json(t)) => {
            body = Some(t.render(vars)?.into_bytes());
            if !has(&headers, "content-type") {
                headers.push(("Content-Type".to_string(), "application/json".to_string()));
            }
        }
        Some(Body::Text(t)) => body = Some(t.render(vars)?.into_bytes()),
        None => {}
    }
    Ok(Request {
        method: entry.method.clone(),
        url,
        headers,
        body,
    })
}

fn attempt(
    entry: &Entry,
    options: &RunOptions,
    vars: &Variables,
    transport: &mut dyn Transport,
) -> Attempt {
    let mut out = Attempt {
        url: None,
        status: None,
        duration_ms: None,
        asserts: Vec::new(),
        captures: Vec::new(),
        error: None,
        unset: None,
        retryable: false,
        new_vars: Variables::new(),
    };
    let request = match build_request(entry, vars) {
        Ok(r) => r,
        Err(e) => {
            out.unset = Some(e);
            return out;
        }
    };
    out.url = Some(request.url.clone());
    let response = match transport.send(&request, options.request_timeout_ms) {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(e);
            out.retryable = true;
            return out;
        }
    };
    out.retryable = true;
    out.status = Some(response.status);
    out.duration_ms = Some(response.duration_ms);
    let Some(spec) = &entry.response else {
        return out;
    };
    let ctx = EvalCtx {
        response: &response,
        json: OnceCell::new(),
    };

    // Implicit asserts: status, then headers.
    let status_text = format!(
        "{} {}",
        spec.version,
        spec.status.map_or("*".to_string(), |s| s.to_string())
    );
    let status_pass = spec.status.is_none_or(|s| s == response.status);
    let mut actual = response.status.to_string();
    if !status_pass && !response.body.is_empty() {
        actual.push_str(&format!(
            " (body: {})",
            excerpt(&String::from_utf8_lossy(&response.body), 300)
        ));
    }
    out.asserts.push(AssertResult {
        line: spec.pos.line,
        col: spec.pos.col,
        text: status_text,
        expected: spec
            .status
            .map_or("any status".to_string(), |s| s.to_string()),
        actual,
        pass: status_pass,
    });

    let mut scope = vars.clone();
    for h in &spec.headers {
        let text = format!("{}: {}", h.name, h.value.source());
        let (expected, pass, actual) = match h.value.render(&scope) {
            Ok(exp) => {
                let values: Vec<&str> = response
                    .headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(&h.name))
                    .map(|(_, v)| v.as_str())
                    .collect();
                let pass = values.contains(&exp.as_str());
                let actual = if values.is_empty() {
                    "none (no such header)".to_string()
                } else {
                    values
                        .iter()
                        .map(|v| show(&Value::String(v.to_string())))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                (show(&Value::String(exp)), pass, actual)
            }
            Err(e) => (
                format!("variable `{}` (unset)", e.variable),
                false,
                "-".to_string(),
            ),
        };
        out.asserts.push(AssertResult {
            line: h.pos.line,
            col: h.pos.col,
            text,
            expected,
            actual,
            pass,
        });
    }

    // Captures (usable by the asserts of the same entry, like Hurl).
    for c in &spec.captures {
        let value = ctx
            .query(&c.query, &scope)
            .and_then(|v| apply_filters(v, &c.filters));
        let (value, error) = match value {
            Ok(Some(v)) => (Some(v), None),
            Ok(None) => (None, Some("the query returned no value".to_string())),
            Err(e) => (None, Some(e)),
        };
        if let Some(v) = &value {
            scope.insert(c.name.clone(), v.clone());
            out.new_vars.insert(c.name.clone(), v.clone());
        }
        out.captures.push(CaptureResult {
            line: c.pos.line,
            col: c.pos.col,
            name: c.name.clone(),
            text: c.text.clone(),
            pass: value.is_some(),
            value,
            error,
        });
    }

    for a in &spec.asserts {
        out.asserts.push(eval_assert(a, &ctx, &scope));
    }
    out
}

struct EvalCtx<'a> {
    response: &'a Response,
    json: OnceCell<Result<Value, String>>,
}

impl EvalCtx<'_> {
    fn body_json(&self) -> Result<&Value, String> {
        self.json
            .get_or_init(|| {
                serde_json::from_slice(&self.response.body).map_err(|e| {
                    format!(
                        "the response body is not JSON ({e}): {}",
                        excerpt(&String::from_utf8_lossy(&self.response.body), 200)
                    )
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn query(&self, q: &Query, vars: &Variables) -> Result<Option<Value>, String> {
        let render = |t: &Template| {
            t.render(vars)
                .map_err(|e| format!("variable `{}` is not set", e.variable))
        };
        Ok(match q {
            Query::Status => Some(Value::from(self.response.status)),
            Query::Body => Some(Value::String(
                String::from_utf8_lossy(&self.response.body).into_owned(),
            )),
            Query::Duration => Some(Value::from(self.response.duration_ms)),
            Query::Variable(name) => vars.get(name).cloned(),
            Query::Header(name) => {
                let name = render(name)?;
                let mut values: Vec<Value> = self
                    .response
                    .headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(&name))
                    .map(|(_, v)| Value::String(v.clone()))
                    .collect();
                match values.len() {
                    0 => None,
                    1 => values.pop(),
                    _ => Some(Value::Array(values)),
                }
            }
            Query::JsonPath(path) => {
                let path = render(path)?;
                let compiled = compile_jsonpath(&path)
                    .map_err(|e| format!("invalid JSONPath {path:?}: {e}"))?;
                let json = self.body_json()?;
                jsonpath_value(&compiled, json)
            }
        })
    }
}

/// Parses a JSONPath expression (RFC 9535). serde_json_path 0.7 panics on
/// a `\u` escape cut short at the end of the text (found by fuzzing:
/// `$['a \u`), and a panic in a guest is a trap, so such escapes are refused
/// here before it sees them.
pub fn compile_jsonpath(path: &str) -> Result<serde_json_path::JsonPath, String> {
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.next() == Some('u') {
            let hex: String = chars.clone().take(4).collect();
            if hex.len() < 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                return Err(format!(
                    "`\\u` must be followed by four hex digits, found `\\u{hex}`"
                ));
            }
            chars.nth(3);
        }
    }
    serde_json_path::JsonPath::parse(path).map_err(|e| e.to_string())
}

/// Like Hurl: one node → its value; several → a collection; none → no value.
pub fn jsonpath_value(path: &serde_json_path::JsonPath, json: &Value) -> Option<Value> {
    let nodes = path.query(json).all();
    match nodes.len() {
        0 => None,
        1 => Some(nodes[0].clone()),
        _ => Some(Value::Array(nodes.into_iter().cloned().collect())),
    }
}

fn apply_filters(mut value: Option<Value>, filters: &[Filter]) -> Result<Option<Value>, String> {
    for f in filters {
        value = match (f, value) {
            (_, None) => {
                return Err(format!(
                    "filter `{}` has no value to work on",
                    filter_name(f)
                ));
            }
            (Filter::Count, Some(Value::Array(a))) => Some(Value::from(a.len())),
            (Filter::Count, Some(Value::Object(o))) => Some(Value::from(o.len())),
            (Filter::Count, Some(v)) => {
                return Err(format!(
                    "filter `count` needs a collection, got {}",
                    show(&v)
                ));
            }
            (Filter::Nth(n), Some(Value::Array(a))) => {
                let len = a.len() as i64;
                let i = if *n < 0 { len + n } else { *n };
                if i < 0 || i >= len {
                    return Err(format!(
                        "filter `nth {n}`: index out of range (collection of {len})"
                    ));
                }
                Some(a[i as usize].clone())
            }
            (Filter::Nth(n), Some(v)) => {
                return Err(format!(
                    "filter `nth {n}` needs a collection, got {}",
                    show(&v)
                ));
            }
        };
    }
    Ok(value)
}

fn filter_name(f: &Filter) -> String {
    match f {
        Filter::Count => "count".to_string(),
        Filter::Nth(n) => format!("nth {n}"),
    }
}

fn eval_assert(a: &Assert, ctx: &EvalCtx<'_>, vars: &Variables) -> AssertResult {
    let mut result = AssertResult {
        line: a.pos.line,
        col: a.pos.col,
        text: a.text.clone(),
        expected: String::new(),
        actual: String::new(),
        pass: false,
    };
    let pred = &a.predicate;
    let expected_value = match &pred.value {
        None => Ok(None),
        Some(PredicateValue::String(t)) => t
            .render(vars)
            .map(|s| Some(Value::String(s)))
            .map_err(|e| e.variable),
        Some(PredicateValue::Variable(t)) => {
            render_typed(t, vars).map(Some).map_err(|e| e.variable)
        }
        Some(PredicateValue::Integer(i)) => Ok(Some(Value::from(*i))),
        Some(PredicateValue::Float(f)) => Ok(Some(
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        )),
        Some(PredicateValue::Bool(b)) => Ok(Some(Value::Bool(*b))),
        Some(PredicateValue::Null) => Ok(Some(Value::Null)),
    };
    let not = if pred.not { "not " } else { "" };
    let expected_value = match expected_value {
        Ok(v) => v,
        Err(var) => {
            result.expected = format!("{not}{} {{{{{var}}}}}", pred.func.keyword());
            result.actual = format!("variable `{var}` is not set");
            return result;
        }
    };
    result.expected = match (&expected_value, pred.func) {
        (Some(v), PredicateFunc::Eq) => format!("{not}{}", show(v)),
        (Some(v), f) => format!("{not}{} {}", f.keyword(), show(v)),
        (None, f) => format!("{not}{}", f.keyword()),
    };
    if pred.func == PredicateFunc::Eq && pred.not {
        result.expected = format!(
            "not {}",
            show(expected_value.as_ref().unwrap_or(&Value::Null))
        );
    }
    let actual = ctx
        .query(&a.query, vars)
        .and_then(|v| apply_filters(v, &a.filters));
    let actual = match actual {
        Ok(v) => v,
        Err(e) => {
            result.actual = e;
            return result;
        }
    };
    result.actual = actual.as_ref().map_or("none (no value)".to_string(), show);
    match predicate(pred.func, actual.as_ref(), expected_value.as_ref()) {
        Ok(ok) => result.pass = ok != pred.not,
        Err(e) => result.actual = format!("{} ({e})", result.actual),
    }
    result
}

/// Evaluates `actual <func> expected`; `Err` when the predicate cannot apply (e.g. a bad regex).
pub fn predicate(
    func: PredicateFunc,
    actual: Option<&Value>,
    expected: Option<&Value>,
) -> Result<bool, String> {
    use PredicateFunc::*;
    if func == Exists {
        return Ok(actual.is_some());
    }
    let Some(a) = actual else {
        return Ok(false);
    };
    let e = expected.unwrap_or(&Value::Null);
    Ok(match func {
        Eq => json_eq(a, e),
        Ne => !json_eq(a, e),
        Gt | Ge | Lt | Le => {
            let ord = match (a, e) {
                (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => None,
            };
            let Some(ord) = ord else {
                return Ok(false);
            };
            match func {
                Gt => ord.is_gt(),
                Ge => ord.is_ge(),
                Lt => ord.is_lt(),
                _ => ord.is_le(),
            }
        }
        Contains => match (a, e) {
            (Value::String(x), Value::String(y)) => x.contains(y.as_str()),
            (Value::Array(items), y) => items.iter().any(|i| json_eq(i, y)),
            _ => false,
        },
        StartsWith => {
            matches!((a, e), (Value::String(x), Value::String(y)) if x.starts_with(y.as_str()))
        }
        EndsWith => {
            matches!((a, e), (Value::String(x), Value::String(y)) if x.ends_with(y.as_str()))
        }
        Matches => {
            let Value::String(pattern) = e else {
                return Err("matches needs a string regex".to_string());
            };
            let re =
                regex_lite::Regex::new(pattern).map_err(|err| format!("invalid regex: {err}"))?;
            match a {
                Value::String(s) => re.is_match(s),
                _ => false,
            }
        }
        IsInteger => matches!(a, Value::Number(n) if n.is_i64() || n.is_u64()),
        IsFloat => matches!(a, Value::Number(n) if n.is_f64()),
        IsNumber => a.is_number(),
        IsBoolean => a.is_boolean(),
        IsString => a.is_string(),
        IsCollection => a.is_array() || a.is_object(),
        IsEmpty => match a {
            Value::Array(x) => x.is_empty(),
            Value::Object(x) => x.is_empty(),
            Value::String(x) => x.is_empty(),
            _ => false,
        },
        Exists => unreachable!(),
    })
}

fn num_cmp(x: &serde_json::Number, y: &serde_json::Number) -> Option<std::cmp::Ordering> {
    match (x.as_i64(), y.as_i64()) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

/// Equality where 1 == 1.0 (numbers compare by value).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(std::cmp::Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A value for a message: compact JSON (strings quoted), long ones cut to an excerpt.
pub fn show(v: &Value) -> String {
    let text = v.to_string();
    excerpt(&text, 200)
}

/// The first `max` characters of `text`, and how long it was.
pub fn excerpt(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}… ({count} chars)")
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Renders a value as it is written into text (strings raw).
pub fn display_value(v: &Value) -> String {
    value_to_text(v)
}
