//! Parser for the supported subset of the Hurl file format.
//!
//! Anything outside the subset is rejected with `file:line:col: what is wrong,
//! and what is supported` — never silently ignored.

use serde_json::Value;

use crate::ast::*;
use crate::template::{FUNCTIONS, Part, Template, valid_name};

/// A syntax error, or syntax outside the supported subset.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ParseError {}

pub const SUPPORTED_OPTIONS: &str = "retry, retry-interval, delay, variable";
pub const SUPPORTED_QUERIES: &str =
    "status, header \"Name\", jsonpath \"$.path\", body, duration, variable \"name\"";
pub const SUPPORTED_FILTERS: &str = "count, nth N";
pub const SUPPORTED_REQUEST_SECTIONS: &str =
    "[Options], [QueryStringParams]/[Query], [FormParams]/[Form], [BasicAuth]";
pub const SUPPORTED_RESPONSE_SECTIONS: &str = "[Captures], [Asserts]";

/// Hurl filters this subset does not implement (rejected by name).
const KNOWN_FILTERS: &[&str] = &[
    "base64Decode",
    "base64Encode",
    "base64UrlSafeDecode",
    "base64UrlSafeEncode",
    "dateFormat",
    "daysAfterNow",
    "daysBeforeNow",
    "decode",
    "first",
    "format",
    "htmlEscape",
    "htmlUnescape",
    "jsonpath",
    "last",
    "location",
    "regex",
    "replace",
    "replaceRegex",
    "split",
    "toDate",
    "toFloat",
    "toHex",
    "toInt",
    "toString",
    "urlDecode",
    "urlEncode",
    "urlQueryParam",
    "utf8Decode",
    "utf8Encode",
    "xpath",
];

/// Parses `src`; `name` is used in error messages (e.g. `crm.hurl`).
pub fn parse(name: &str, src: &str) -> Result<HurlFile, ParseError> {
    let lines: Vec<Vec<char>> = src
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).chars().collect())
        .collect();
    let mut p = Parser {
        file: name.to_string(),
        lines,
    };
    let entries = p.run()?;
    Ok(HurlFile {
        name: name.to_string(),
        entries,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Request,
    Options,
    Query,
    Form,
    BasicAuth,
    AfterBody,
    Response,
    Captures,
    Asserts,
}

struct Parser {
    file: String,
    lines: Vec<Vec<char>>,
}

fn first_non_ws(line: &[char]) -> usize {
    line.iter()
        .position(|c| !c.is_whitespace())
        .unwrap_or(line.len())
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl Parser {
    fn err<T>(&self, line: usize, col: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        })
    }

    fn run(&mut self) -> Result<Vec<Entry>, ParseError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut comments: Vec<String> = Vec::new();
        let mut ctx = Ctx::Request;
        let mut li = 0;
        while li < self.lines.len() {
            let line = self.lines[li].clone();
            let lno = li + 1;
            let start = first_non_ws(&line);
            let rest: String = line[start..].iter().collect();
            let col = start + 1;
            if rest.is_empty() {
                comments.clear();
                li += 1;
                continue;
            }
            if let Some(c) = rest.strip_prefix('#') {
                comments.push(c.trim().to_string());
                li += 1;
                continue;
            }
            let title = std::mem::take(&mut comments);

            // The response line.
            if rest == "HTTP"
                || rest.starts_with("HTTP/")
                || rest.starts_with("HTTP ")
                || rest.starts_with("HTTP\t")
            {
                let Some(entry) = entries.last_mut() else {
                    return self.err(
                        lno,
                        col,
                        "a response line needs a request line `METHOD URL` before it",
                    );
                };
                if matches!(ctx, Ctx::Response | Ctx::Captures | Ctx::Asserts) {
                    return self.err(lno, col, "second response line for one request; start a new entry with a request line `METHOD URL`");
                }
                entry.response = Some(self.response_line(&line, lno, start)?);
                ctx = Ctx::Response;
                li += 1;
                continue;
            }

            // A request line starts a new entry.
            if let Some(entry) = self.request_line(&line, lno, start)? {
                let mut entry = entry;
                if !title.is_empty() {
                    entry.title = Some(title.join(" "));
                }
                entries.push(entry);
                ctx = Ctx::Request;
                li += 1;
                continue;
            }

            let Some(entry) = entries.last_mut() else {
                return self.err(
                    lno,
                    col,
                    "expected a request line `METHOD URL` (e.g. `GET {{gateway}}/health`)",
                );
            };
            let in_request = matches!(
                ctx,
                Ctx::Request | Ctx::Options | Ctx::Query | Ctx::Form | Ctx::BasicAuth
            );

            // Section headers.
            if let Some(section) = section_name(&rest) {
                let new_ctx = match section.as_str() {
                    "Options" => Ctx::Options,
                    "QueryStringParams" | "Query" => Ctx::Query,
                    "FormParams" | "Form" => Ctx::Form,
                    "BasicAuth" => Ctx::BasicAuth,
                    "Captures" => Ctx::Captures,
                    "Asserts" => Ctx::Asserts,
                    "Cookies" | "MultipartFormData" | "Multipart" => {
                        return self.err(lno, col, format!("section [{section}] is not supported; supported request sections: {SUPPORTED_REQUEST_SECTIONS}; response sections: {SUPPORTED_RESPONSE_SECTIONS}"));
                    }
                    _ => {
                        return self.err(lno, col, format!("unknown section [{section}]; supported request sections: {SUPPORTED_REQUEST_SECTIONS}; response sections: {SUPPORTED_RESPONSE_SECTIONS}"));
                    }
                };
                let request_section = matches!(
                    new_ctx,
                    Ctx::Options | Ctx::Query | Ctx::Form | Ctx::BasicAuth
                );
                if request_section && !in_request {
                    let where_ = if ctx == Ctx::AfterBody {
                        "before the request body"
                    } else {
                        "before the response line `HTTP …`"
                    };
                    return self.err(
                        lno,
                        col,
                        format!("[{section}] is a request section: put it {where_}"),
                    );
                }
                if !request_section && in_request | (ctx == Ctx::AfterBody) {
                    return self.err(lno, col, format!("[{section}] is a response section: it needs a response line `HTTP <status>` before it"));
                }
                ctx = new_ctx;
                li += 1;
                continue;
            }

            // Bodies.
            let first = line[start];
            if first == '{' || first == '[' || first == '`' {
                if matches!(ctx, Ctx::Response | Ctx::Captures | Ctx::Asserts) {
                    return self.err(lno, col, "a response body (implicit body assert) is not supported; assert on the body in [Asserts] with `jsonpath \"$…\"` or `body`");
                }
                if ctx == Ctx::AfterBody {
                    return self.err(lno, col, "a request has at most one body");
                }
                let (body, next) = if first == '`' && rest.starts_with("```") {
                    self.multiline_body(li, start)?
                } else if first == '`' {
                    self.oneline_body(li, start)?
                } else {
                    self.json_body(li, start)?
                };
                entry.body = Some(body);
                ctx = Ctx::AfterBody;
                li = next;
                continue;
            }

            match ctx {
                Ctx::AfterBody => {
                    return self.err(lno, col, "after the request body only the response line `HTTP <status>` or the next request `METHOD URL` may follow");
                }
                Ctx::Request => {
                    let (name, value) = self.key_value(&line, lno, start)?;
                    entry.headers.push((name, value));
                }
                Ctx::Query => {
                    let kv = self.key_value(&line, lno, start)?;
                    entry.query.push(kv);
                }
                Ctx::Form => {
                    let kv = self.key_value(&line, lno, start)?;
                    entry.form.push(kv);
                }
                Ctx::BasicAuth => {
                    if entry.basic_auth.is_some() {
                        return self.err(lno, col, "[BasicAuth] takes one line `user: password`");
                    }
                    entry.basic_auth = Some(self.key_value(&line, lno, start)?);
                }
                Ctx::Options => {
                    let (name, value) = self.key_value(&line, lno, start)?;
                    self.option(&mut entry.options, &name, &value, &line, lno, start)?;
                }
                Ctx::Response => {
                    let (name, value) = self.key_value(&line, lno, start)?;
                    let response = entry.response.as_mut().expect("response context");
                    response.headers.push(HeaderAssert {
                        pos: Pos { line: lno, col },
                        name,
                        value,
                    });
                }
                Ctx::Captures => {
                    let capture = self.capture(&line, lno, start)?;
                    entry
                        .response
                        .as_mut()
                        .expect("response context")
                        .captures
                        .push(capture);
                }
                Ctx::Asserts => {
                    let assert = self.assert(&line, lno, start)?;
                    entry
                        .response
                        .as_mut()
                        .expect("response context")
                        .asserts
                        .push(assert);
                }
            }
            li += 1;
        }
        Ok(entries)
    }

    /// `METHOD URL [# comment]`, or `None` if the line is not a request line.
    fn request_line(
        &self,
        line: &[char],
        lno: usize,
        start: usize,
    ) -> Result<Option<Entry>, ParseError> {
        let mut j = start;
        while j < line.len() && line[j].is_ascii_uppercase() {
            j += 1;
        }
        if j == start || j >= line.len() || !line[j].is_whitespace() {
            return Ok(None);
        }
        let method: String = line[start..j].iter().collect();
        while j < line.len() && line[j].is_whitespace() {
            j += 1;
        }
        if j >= line.len() || line[j] == '#' {
            return self.err(lno, j + 1, format!("`{method}` needs a URL"));
        }
        let (url, end) = self.scan(line, lno, j, &|c| c.is_whitespace() || c == '#', false)?;
        self.expect_end(line, lno, end, "the URL")?;
        if let Some(Part::Lit(lit)) = url.parts.first()
            && !(lit.starts_with("http://") || lit.starts_with("https://"))
        {
            return self.err(
                lno,
                j + 1,
                format!(
                    "the URL must start with http:// or https:// (or a template such as `{{{{gateway}}}}`), got `{}`",
                    url.source()
                ),
            );
        }
        Ok(Some(Entry {
            line: lno,
            title: None,
            method,
            url,
            headers: Vec::new(),
            query: Vec::new(),
            form: Vec::new(),
            basic_auth: None,
            options: Options::default(),
            body: None,
            response: None,
        }))
    }

    fn response_line(
        &self,
        line: &[char],
        lno: usize,
        start: usize,
    ) -> Result<ResponseSpec, ParseError> {
        let mut j = start;
        while j < line.len() && !line[j].is_whitespace() {
            j += 1;
        }
        let version: String = line[start..j].iter().collect();
        if !matches!(
            version.as_str(),
            "HTTP" | "HTTP/1.0" | "HTTP/1.1" | "HTTP/2" | "HTTP/3"
        ) {
            return self.err(
                lno,
                start + 1,
                format!("unknown HTTP version `{version}`; supported: HTTP, HTTP/1.0, HTTP/1.1, HTTP/2, HTTP/3"),
            );
        }
        while j < line.len() && line[j].is_whitespace() {
            j += 1;
        }
        let s = j;
        while j < line.len() && !line[j].is_whitespace() {
            j += 1;
        }
        let word: String = line[s..j].iter().collect();
        let status = if word == "*" {
            None
        } else {
            match word.parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => Some(code),
                _ => {
                    return self.err(
                        lno,
                        s + 1,
                        format!("expected a status code (100-599) or `*` after `{version}`, got `{word}`"),
                    );
                }
            }
        };
        self.expect_end(line, lno, j, "the status")?;
        Ok(ResponseSpec {
            pos: Pos {
                line: lno,
                col: start + 1,
            },
            version,
            status,
            headers: Vec::new(),
            captures: Vec::new(),
            asserts: Vec::new(),
        })
    }

    /// Only whitespace or a comment may follow.
    fn expect_end(
        &self,
        line: &[char],
        lno: usize,
        mut j: usize,
        what: &str,
    ) -> Result<(), ParseError> {
        while j < line.len() && line[j].is_whitespace() {
            j += 1;
        }
        if j < line.len() && line[j] != '#' {
            let rest: String = line[j..].iter().collect();
            return self.err(
                lno,
                j + 1,
                format!("unexpected `{}` after {what}", rest.trim()),
            );
        }
        Ok(())
    }

    /// Scans text with `{{templates}}` from `j` until `stop` (outside a template);
    /// with `escapes`, `\x` sequences are decoded. Returns the template and the stop index.
    fn scan(
        &self,
        line: &[char],
        lno: usize,
        mut j: usize,
        stop: &dyn Fn(char) -> bool,
        escapes_raw: bool,
    ) -> Result<(Template, usize), ParseError> {
        let mut t = Template::default();
        while j < line.len() {
            let c = line[j];
            if c == '{' && line.get(j + 1) == Some(&'{') {
                let (part, next) = self.template_expr(line, lno, j, false)?;
                t.parts.push(part);
                j = next;
                continue;
            }
            if stop(c) {
                break;
            }
            if c == '\\' && !escapes_raw {
                let (decoded, next) = self.escape(line, lno, j)?;
                t.push_char(decoded);
                j = next;
                continue;
            }
            t.push_char(c);
            j += 1;
        }
        Ok((t, j))
    }

    /// `{{name}}` starting at `j`; returns the part and the index after `}}`.
    fn template_expr(
        &self,
        line: &[char],
        lno: usize,
        j: usize,
        json_string: bool,
    ) -> Result<(Part, usize), ParseError> {
        let mut k = j + 2;
        while k + 1 < line.len() && !(line[k] == '}' && line[k + 1] == '}') {
            k += 1;
        }
        if k + 1 >= line.len() {
            return self.err(
                lno,
                j + 1,
                "unterminated template: `{{` without `}}` on the same line",
            );
        }
        let inner: String = line[j + 2..k].iter().collect();
        let name = inner.trim();
        if !valid_name(name) {
            return self.err(
                lno,
                j + 1,
                format!("invalid template `{{{{{inner}}}}}`: expected a variable name or one of the functions {} (filters and expressions are not supported)", FUNCTIONS.join(", ")),
            );
        }
        Ok((
            Part::Expr {
                name: name.to_string(),
                line: lno,
                col: j + 1,
                json_string,
            },
            k + 2,
        ))
    }

    fn escape(&self, line: &[char], lno: usize, j: usize) -> Result<(char, usize), ParseError> {
        let Some(&e) = line.get(j + 1) else {
            return self.err(lno, j + 1, "a line cannot end with `\\`");
        };
        let c = match e {
            '\\' => '\\',
            '"' => '"',
            '#' => '#',
            ':' => ':',
            '`' => '`',
            '{' => '{',
            '}' => '}',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'u' => {
                if line.get(j + 2) != Some(&'{') {
                    return self.err(lno, j + 1, "unicode escapes are written `\\u{XXXX}`");
                }
                let mut k = j + 3;
                while k < line.len() && line[k] != '}' {
                    k += 1;
                }
                let hex: String = line[j + 3..k.min(line.len())].iter().collect();
                let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                return match (c, k < line.len()) {
                    (Some(c), true) => Ok((c, k + 1)),
                    _ => self.err(lno, j + 1, format!("invalid unicode escape `\\u{{{hex}}}`")),
                };
            }
            other => {
                return self.err(
                    lno,
                    j + 1,
                    format!("unknown escape `\\{other}`; supported: \\\\ \\\" \\# \\: \\` \\n \\t \\r \\b \\f \\u{{XXXX}}"),
                );
            }
        };
        Ok((c, j + 2))
    }

    /// `"text"` starting at `j` (the quote); returns the template and the index after the closing quote.
    fn quoted(&self, line: &[char], lno: usize, j: usize) -> Result<(Template, usize), ParseError> {
        let (t, end) = self.scan(line, lno, j + 1, &|c| c == '"', false)?;
        if end >= line.len() {
            return self.err(lno, j + 1, "unterminated string: missing the closing `\"`");
        }
        Ok((t, end + 1))
    }

    /// `name: value [# comment]`.
    fn key_value(
        &self,
        line: &[char],
        lno: usize,
        start: usize,
    ) -> Result<(String, Template), ParseError> {
        let (key, j) = self.scan(
            line,
            lno,
            start,
            &|c| c == ':' || c.is_whitespace() || c == '#',
            false,
        )?;
        if j >= line.len() || line[j] != ':' {
            let text: String = line[start..].iter().collect();
            return self.err(
                lno,
                start + 1,
                format!("expected `name: value`, got `{}`", text.trim()),
            );
        }
        if key.parts.iter().any(|p| matches!(p, Part::Expr { .. })) {
            return self.err(
                lno,
                start + 1,
                "templates are not supported in names, only in values",
            );
        }
        let key = key.source();
        if key.is_empty() {
            return self.err(lno, start + 1, "empty name before `:`");
        }
        let mut k = j + 1;
        while k < line.len() && line[k].is_whitespace() {
            k += 1;
        }
        let (mut value, _) = self.scan(line, lno, k, &|c| c == '#', false)?;
        // Trailing whitespace is not part of the value.
        if let Some(Part::Lit(s)) = value.parts.last_mut() {
            let trimmed = s.trim_end().to_string();
            *s = trimmed;
            if s.is_empty() {
                value.parts.pop();
            }
        }
        Ok((key, value))
    }

    fn option(
        &self,
        options: &mut Options,
        name: &str,
        value: &Template,
        line: &[char],
        lno: usize,
        start: usize,
    ) -> Result<(), ParseError> {
        let vcol = line
            .iter()
            .position(|&c| c == ':')
            .map(|p| p + 2 + first_non_ws(&line[p + 1..]))
            .unwrap_or(start + 1);
        let text = value.source();
        match name {
            "retry" => match text.parse::<i64>() {
                Ok(n) if n >= -1 => options.retry = Some(n),
                _ => {
                    return self.err(lno, vcol, format!("retry takes an integer: the number of retries (-1 = unlimited), got `{text}`"));
                }
            },
            "retry-interval" | "delay" => {
                let Some(ms) = parse_duration_ms(&text) else {
                    return self.err(
                        lno,
                        vcol,
                        format!("{name} takes a duration: milliseconds (`500`) or with a unit (`500ms`, `2s`, `1m`), got `{text}`"),
                    );
                };
                if name == "delay" {
                    options.delay_ms = Some(ms);
                } else {
                    options.retry_interval_ms = Some(ms);
                }
            }
            "variable" => {
                let Some(eq) = line.iter().skip(vcol - 1).position(|&c| c == '=') else {
                    return self.err(lno, vcol, "variable takes `name=value`");
                };
                let eq = vcol - 1 + eq;
                let var: String = line[vcol - 1..eq]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string();
                if !valid_name(&var) {
                    return self.err(lno, vcol, format!("invalid variable name `{var}`"));
                }
                let mut k = eq + 1;
                while k < line.len() && line[k].is_whitespace() {
                    k += 1;
                }
                let raw: String = line[k..].iter().collect();
                let raw_trim = raw.split('#').next().unwrap_or("").trim();
                let value = if raw_trim.starts_with('"') {
                    let (t, end) = self.quoted(line, lno, k)?;
                    self.expect_end(line, lno, end, "the value")?;
                    if t.parts.iter().any(|p| matches!(p, Part::Expr { .. })) {
                        OptionValue::Template(t)
                    } else {
                        OptionValue::Json(Value::String(t.source()))
                    }
                } else if let Some(v) = literal_value(raw_trim) {
                    OptionValue::Json(v)
                } else {
                    let (mut t, _) = self.scan(line, lno, k, &|c| c == '#', false)?;
                    if let Some(Part::Lit(s)) = t.parts.last_mut() {
                        *s = s.trim_end().to_string();
                    }
                    OptionValue::Template(t)
                };
                options.variables.push((var, value));
            }
            other => {
                return self.err(
                    lno,
                    start + 1,
                    format!(
                        "option `{other}` is not supported; supported options: {SUPPORTED_OPTIONS}"
                    ),
                );
            }
        }
        Ok(())
    }

    fn capture(&self, line: &[char], lno: usize, start: usize) -> Result<Capture, ParseError> {
        let mut j = start;
        while j < line.len() && is_ident_char(line[j]) {
            j += 1;
        }
        let name: String = line[start..j].iter().collect();
        if name.is_empty() || line.get(j) != Some(&':') {
            return self.err(
                lno,
                start + 1,
                format!("expected a capture `name: query [filters]` ({SUPPORTED_QUERIES})"),
            );
        }
        if !valid_name(&name) {
            return self.err(lno, start + 1, format!("invalid variable name `{name}`"));
        }
        let mut lex = Lex {
            p: self,
            line,
            lno,
            j: j + 1,
        };
        lex.skip_ws();
        let text_start = lex.j;
        let query = lex.query()?;
        let filters = lex.filters()?;
        lex.skip_ws();
        if !lex.at_end() {
            let rest: String = line[lex.j..].iter().collect();
            return self.err(lno, lex.j + 1, format!("unexpected `{}` in a capture: a capture is `name: query [filters]`; supported filters: {SUPPORTED_FILTERS}", rest.trim()));
        }
        let text: String = line[text_start..lex.j].iter().collect();
        Ok(Capture {
            pos: Pos {
                line: lno,
                col: start + 1,
            },
            text: text.trim().to_string(),
            name,
            query,
            filters,
        })
    }

    fn assert(&self, line: &[char], lno: usize, start: usize) -> Result<Assert, ParseError> {
        let mut lex = Lex {
            p: self,
            line,
            lno,
            j: start,
        };
        let query = lex.query()?;
        let filters = lex.filters()?;
        let predicate = lex.predicate()?;
        lex.skip_ws();
        if !lex.at_end() {
            let rest: String = line[lex.j..].iter().collect();
            return self.err(
                lno,
                lex.j + 1,
                format!("unexpected `{}` after the predicate", rest.trim()),
            );
        }
        let text: String = line[start..lex.j].iter().collect();
        Ok(Assert {
            pos: Pos {
                line: lno,
                col: start + 1,
            },
            text: text.trim().to_string(),
            query,
            filters,
            predicate,
        })
    }

    fn json_body(&self, li: usize, start: usize) -> Result<(Body, usize), ParseError> {
        let mut t = Template::default();
        let mut placeholder = String::new();
        let mut depth = 0usize;
        let mut in_string = false;
        let mut l = li;
        let mut j = start;
        loop {
            let Some(line) = self.lines.get(l) else {
                return self.err(
                    li + 1,
                    start + 1,
                    "unterminated JSON body: brackets are not balanced",
                );
            };
            if j >= line.len() {
                t.push_char('\n');
                placeholder.push('\n');
                l += 1;
                j = 0;
                continue;
            }
            let c = line[j];
            if c == '{' && line.get(j + 1) == Some(&'{') {
                let (part, next) = self.template_expr(line, l + 1, j, in_string)?;
                t.parts.push(part);
                placeholder.push_str(if in_string { "x" } else { "0" });
                j = next;
                continue;
            }
            t.push_char(c);
            placeholder.push(c);
            j += 1;
            if in_string {
                if c == '\\' {
                    if let Some(&n) = line.get(j) {
                        t.push_char(n);
                        placeholder.push(n);
                        j += 1;
                    }
                } else if c == '"' {
                    in_string = false;
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '{' | '[' => depth += 1,
                '}' | ']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        let line = &self.lines[l];
        self.expect_end(line, l + 1, j, "the JSON body")?;
        if let Err(e) = serde_json::from_str::<Value>(&placeholder) {
            let (el, ec) = (e.line(), e.column());
            let line_no = li + el;
            let col = if el == 1 { start + ec } else { ec };
            let msg = e.to_string();
            let msg = msg.split(" at line").next().unwrap_or(&msg);
            return self.err(line_no, col.max(1), format!("invalid JSON body: {msg}"));
        }
        Ok((Body::Json(t), l + 1))
    }

    fn multiline_body(&self, li: usize, start: usize) -> Result<(Body, usize), ParseError> {
        let line = &self.lines[li];
        let after: String = line[start + 3..].iter().collect();
        let hint = after.trim();
        if !hint.is_empty() && !hint.starts_with('#') {
            return self.err(
                li + 1,
                start + 4,
                format!("multiline string `{}` is not supported: only plain ``` … ``` (no language hint or oneline ```text```)", hint),
            );
        }
        let mut t = Template::default();
        let mut l = li + 1;
        loop {
            let Some(line) = self.lines.get(l) else {
                return self.err(
                    li + 1,
                    start + 1,
                    "unterminated multiline string: missing the closing ```",
                );
            };
            let s = first_non_ws(line);
            let rest: String = line[s..].iter().collect();
            if rest.starts_with("```") {
                self.expect_end(line, l + 1, s + 3, "the closing ```")?;
                break;
            }
            let (part, _) = self.scan(line, l + 1, 0, &|_| false, true)?;
            t.parts.extend(part.parts);
            t.push_char('\n');
            l += 1;
        }
        // Merge adjacent literals.
        let mut merged = Template::default();
        for p in t.parts {
            match p {
                Part::Lit(s) => merged.push_str(&s),
                e => merged.parts.push(e),
            }
        }
        Ok((Body::Text(merged), l + 1))
    }

    fn oneline_body(&self, li: usize, start: usize) -> Result<(Body, usize), ParseError> {
        let line = &self.lines[li];
        let (t, end) = self.scan(line, li + 1, start + 1, &|c| c == '`', false)?;
        if end >= line.len() {
            return self.err(
                li + 1,
                start + 1,
                "unterminated oneline string: missing the closing `",
            );
        }
        self.expect_end(line, li + 1, end + 1, "the oneline string")?;
        Ok((Body::Text(t), li + 1))
    }
}

/// `[Name]` on a line of its own (a JSON array such as `[1]` or `[true]` is not a section).
fn section_name(rest: &str) -> Option<String> {
    let inner = rest.strip_prefix('[')?;
    let end = inner.find(']')?;
    let name = &inner[..end];
    let after = inner[end + 1..].trim();
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphabetic())
        || matches!(name, "true" | "false" | "null")
        || !(after.is_empty() || after.starts_with('#'))
    {
        return None;
    }
    Some(name.to_string())
}

/// `500` (ms), `500ms`, `2s`, `1m`.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..digits].parse().ok()?;
    match &text[digits..] {
        "" | "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        _ => None,
    }
}

/// `true`, `false`, `null`, an integer or a float.
fn literal_value(text: &str) -> Option<Value> {
    match text {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    if text.contains('.')
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        && let Ok(f) = text.parse::<f64>()
    {
        return serde_json::Number::from_f64(f).map(Value::Number);
    }
    None
}

/// Tokenizer for the query / filter / predicate part of a capture or assert line.
struct Lex<'a> {
    p: &'a Parser,
    line: &'a [char],
    lno: usize,
    j: usize,
}

impl Lex<'_> {
    fn skip_ws(&mut self) {
        while self.j < self.line.len() && self.line[self.j].is_whitespace() {
            self.j += 1;
        }
    }

    fn at_end(&self) -> bool {
        self.j >= self.line.len() || self.line[self.j] == '#'
    }

    fn peek_word(&self) -> String {
        let mut k = self.j;
        while k < self.line.len() && is_ident_char(self.line[k]) {
            k += 1;
        }
        self.line[self.j..k].iter().collect()
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        self.p.err(self.lno, self.j + 1, message)
    }

    fn quoted_arg(&mut self, what: &str) -> Result<Template, ParseError> {
        self.skip_ws();
        if self.line.get(self.j) != Some(&'"') {
            return self.err(format!(
                "`{what}` takes a quoted argument, e.g. {what} \"…\""
            ));
        }
        let (t, end) = self.p.quoted(self.line, self.lno, self.j)?;
        self.j = end;
        Ok(t)
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        self.skip_ws();
        let word = self.peek_word();
        let col = self.j;
        self.j += word.chars().count();
        let q = match word.as_str() {
            "status" => Query::Status,
            "body" => Query::Body,
            "duration" => Query::Duration,
            "header" => Query::Header(self.quoted_arg("header")?),
            "variable" => {
                let t = self.quoted_arg("variable")?;
                if !t.variables().is_empty() || !valid_name(&t.source()) {
                    return self.p.err(
                        self.lno,
                        col + 1,
                        format!("`variable` takes a variable name, got \"{}\"", t.source()),
                    );
                }
                Query::Variable(t.source())
            }
            "jsonpath" => {
                let arg_col = {
                    let mut k = self.j;
                    while k < self.line.len() && self.line[k].is_whitespace() {
                        k += 1;
                    }
                    k
                };
                let t = self.quoted_arg("jsonpath")?;
                if !t.parts.iter().any(|p| matches!(p, Part::Expr { .. }))
                    && let Err(e) = crate::run::compile_jsonpath(&t.source())
                {
                    return self.p.err(
                        self.lno,
                        arg_col + 1,
                        format!("invalid JSONPath \"{}\" (RFC 9535): {e}", t.source()),
                    );
                }
                Query::JsonPath(t)
            }
            "" => {
                self.j = col;
                return self.err(format!(
                    "expected a query; supported queries: {SUPPORTED_QUERIES}"
                ));
            }
            other => {
                self.j = col;
                return self.err(format!(
                    "query `{other}` is not supported; supported queries: {SUPPORTED_QUERIES}"
                ));
            }
        };
        Ok(q)
    }

    fn filters(&mut self) -> Result<Vec<Filter>, ParseError> {
        let mut filters = Vec::new();
        loop {
            self.skip_ws();
            let word = self.peek_word();
            match word.as_str() {
                "count" => {
                    self.j += 5;
                    filters.push(Filter::Count);
                }
                "nth" => {
                    self.j += 3;
                    self.skip_ws();
                    let s = self.j;
                    if self.line.get(self.j) == Some(&'-') {
                        self.j += 1;
                    }
                    while self.j < self.line.len() && self.line[self.j].is_ascii_digit() {
                        self.j += 1;
                    }
                    let text: String = self.line[s..self.j].iter().collect();
                    let Ok(n) = text.parse::<i64>() else {
                        self.j = s;
                        return self.err("`nth` takes an integer index, e.g. nth 0");
                    };
                    filters.push(Filter::Nth(n));
                }
                w if KNOWN_FILTERS.contains(&w) => {
                    return self.err(format!(
                        "filter `{w}` is not supported; supported filters: {SUPPORTED_FILTERS}"
                    ));
                }
                _ => return Ok(filters),
            }
        }
    }

    fn predicate(&mut self) -> Result<Predicate, ParseError> {
        self.skip_ws();
        let mut not = false;
        if self.peek_word() == "not" {
            not = true;
            self.j += 3;
            self.skip_ws();
        }
        if self.at_end() {
            return self.err(format!(
                "expected a predicate after the query; supported predicates: {}",
                supported_predicates()
            ));
        }
        let ops = [
            ("==", PredicateFunc::Eq),
            ("!=", PredicateFunc::Ne),
            (">=", PredicateFunc::Ge),
            ("<=", PredicateFunc::Le),
            (">", PredicateFunc::Gt),
            ("<", PredicateFunc::Lt),
        ];
        let mut func = None;
        for (op, f) in ops {
            let chars: Vec<char> = op.chars().collect();
            if self.line[self.j..].starts_with(&chars) {
                func = Some(f);
                self.j += chars.len();
                break;
            }
        }
        let func = match func {
            Some(f) => f,
            None => {
                let word = self.peek_word();
                let Some(f) = PredicateFunc::ALL.iter().find(|f| f.keyword() == word) else {
                    let shown = if word.is_empty() {
                        self.line[self.j..]
                            .iter()
                            .take_while(|c| !c.is_whitespace())
                            .collect()
                    } else {
                        word
                    };
                    return self.err(format!("predicate `{shown}` is not supported; supported predicates: {} (each can be negated with `not`); supported filters: {SUPPORTED_FILTERS}", supported_predicates()));
                };
                self.j += word.chars().count();
                *f
            }
        };
        let value = if func.takes_value() {
            self.skip_ws();
            Some(self.predicate_value(func)?)
        } else {
            None
        };
        Ok(Predicate { not, func, value })
    }

    fn predicate_value(&mut self, func: PredicateFunc) -> Result<PredicateValue, ParseError> {
        let start = self.j;
        let Some(&c) = self.line.get(self.j) else {
            return self.err(format!(
                "`{}` needs a value: \"string\", number, true, false, null or {{{{variable}}}}",
                func.keyword()
            ));
        };
        let value = if c == '"' {
            let (t, end) = self.p.quoted(self.line, self.lno, self.j)?;
            self.j = end;
            PredicateValue::String(t)
        } else if c == '/' && func == PredicateFunc::Matches {
            let mut k = self.j + 1;
            let mut re = String::new();
            while k < self.line.len() && self.line[k] != '/' {
                if self.line[k] == '\\' && self.line.get(k + 1) == Some(&'/') {
                    re.push('/');
                    k += 2;
                    continue;
                }
                re.push(self.line[k]);
                k += 1;
            }
            if k >= self.line.len() {
                return self.err("unterminated regex: missing the closing `/`");
            }
            self.j = k + 1;
            PredicateValue::String(Template::literal(re))
        } else if c == '{' && self.line.get(self.j + 1) == Some(&'{') {
            let (part, next) = self.p.template_expr(self.line, self.lno, self.j, false)?;
            self.j = next;
            PredicateValue::Variable(Template { parts: vec![part] })
        } else {
            let mut k = self.j;
            while k < self.line.len() && !self.line[k].is_whitespace() && self.line[k] != '#' {
                k += 1;
            }
            let text: String = self.line[self.j..k].iter().collect();
            let v = match literal_value(&text) {
                Some(Value::Bool(b)) => PredicateValue::Bool(b),
                Some(Value::Null) => PredicateValue::Null,
                Some(Value::Number(n)) if n.is_i64() => {
                    PredicateValue::Integer(n.as_i64().unwrap_or_default())
                }
                Some(Value::Number(n)) => PredicateValue::Float(n.as_f64().unwrap_or_default()),
                _ => {
                    return self.err(format!("invalid value `{text}`: expected \"string\", integer, float, true, false, null or {{{{variable}}}}"));
                }
            };
            self.j = k;
            v
        };
        if func == PredicateFunc::Matches {
            match &value {
                PredicateValue::String(t) => {
                    if t.variables().is_empty()
                        && let Err(e) = regex_lite::Regex::new(&t.source())
                    {
                        return self
                            .p
                            .err(self.lno, start + 1, format!("invalid regex: {e}"));
                    }
                }
                PredicateValue::Variable(_) => {}
                _ => {
                    return self.p.err(
                        self.lno,
                        start + 1,
                        "`matches` takes a \"regex\" or /regex/",
                    );
                }
            }
        }
        if matches!(func, PredicateFunc::StartsWith | PredicateFunc::EndsWith)
            && !matches!(
                value,
                PredicateValue::String(_) | PredicateValue::Variable(_)
            )
        {
            return self.p.err(
                self.lno,
                start + 1,
                format!("`{}` takes a \"string\"", func.keyword()),
            );
        }
        Ok(value)
    }
}

pub fn supported_predicates() -> String {
    PredicateFunc::ALL
        .iter()
        .map(|f| f.keyword())
        .collect::<Vec<_>>()
        .join(", ")
}
