//! The parsed form of a Hurl file (the supported subset).

use crate::template::Template;

/// 1-based line and column in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HurlFile {
    /// Name used in messages (e.g. `crm.hurl`).
    pub name: String,
    pub entries: Vec<Entry>,
}

/// One request and its optional response specification.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Line of the request line `METHOD URL`.
    pub line: usize,
    /// The comment line(s) directly above the request line, joined with a space.
    pub title: Option<String>,
    pub method: String,
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    pub query: Vec<(String, Template)>,
    pub form: Vec<(String, Template)>,
    pub basic_auth: Option<(String, Template)>,
    pub options: Options,
    pub body: Option<Body>,
    pub response: Option<ResponseSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON body; `Content-Type: application/json` unless a header says otherwise.
    Json(Template),
    /// A multiline (```` ``` ````) or oneline (`` ` ``) string.
    Text(Template),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Options {
    /// Retries after a failed attempt (-1: unlimited, bounded by the run's deadline).
    pub retry: Option<i64>,
    pub retry_interval_ms: Option<u64>,
    pub delay_ms: Option<u64>,
    /// `variable: name=value`, set before the request is sent.
    pub variables: Vec<(String, OptionValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Json(serde_json::Value),
    Template(Template),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSpec {
    pub pos: Pos,
    /// `HTTP`, `HTTP/1.0`, `HTTP/1.1`, `HTTP/2` or `HTTP/3` as written (the
    /// version is not verified: the transport does not report it).
    pub version: String,
    /// `None` for `HTTP *`.
    pub status: Option<u16>,
    pub headers: Vec<HeaderAssert>,
    pub captures: Vec<Capture>,
    pub asserts: Vec<Assert>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderAssert {
    pub pos: Pos,
    pub name: String,
    pub value: Template,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub pos: Pos,
    /// The source text after `name:`.
    pub text: String,
    pub name: String,
    pub query: Query,
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assert {
    pub pos: Pos,
    /// The source text of the line (without a trailing comment).
    pub text: String,
    pub query: Query,
    pub filters: Vec<Filter>,
    pub predicate: Predicate,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Status,
    Header(Template),
    JsonPath(Template),
    Body,
    Duration,
    Variable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Count,
    Nth(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub not: bool,
    pub func: PredicateFunc,
    pub value: Option<PredicateValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredicateFunc {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    Exists,
    IsInteger,
    IsFloat,
    IsNumber,
    IsBoolean,
    IsString,
    IsCollection,
    IsEmpty,
}

impl PredicateFunc {
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Contains => "contains",
            Self::StartsWith => "startsWith",
            Self::EndsWith => "endsWith",
            Self::Matches => "matches",
            Self::Exists => "exists",
            Self::IsInteger => "isInteger",
            Self::IsFloat => "isFloat",
            Self::IsNumber => "isNumber",
            Self::IsBoolean => "isBoolean",
            Self::IsString => "isString",
            Self::IsCollection => "isCollection",
            Self::IsEmpty => "isEmpty",
        }
    }

    pub fn takes_value(self) -> bool {
        matches!(
            self,
            Self::Eq
                | Self::Ne
                | Self::Gt
                | Self::Ge
                | Self::Lt
                | Self::Le
                | Self::Contains
                | Self::StartsWith
                | Self::EndsWith
                | Self::Matches
        )
    }

    pub const ALL: [PredicateFunc; 18] = [
        Self::Eq,
        Self::Ne,
        Self::Gt,
        Self::Ge,
        Self::Lt,
        Self::Le,
        Self::Contains,
        Self::StartsWith,
        Self::EndsWith,
        Self::Matches,
        Self::Exists,
        Self::IsInteger,
        Self::IsFloat,
        Self::IsNumber,
        Self::IsBoolean,
        Self::IsString,
        Self::IsCollection,
        Self::IsEmpty,
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub enum PredicateValue {
    /// `"text"` (templates expanded) or `/regex/` (for `matches`).
    String(Template),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Null,
    /// A bare `{{name}}`: the variable's typed value.
    Variable(Template),
}
