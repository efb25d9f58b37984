//! `{{name}}` templates and their expansion.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use serde_json::Value;

/// Variables in scope: initial ones given by the caller plus captures, typed as JSON values.
pub type Variables = BTreeMap<String, Value>;

/// Built-in template functions (expanded without a variable of that name).
pub const FUNCTIONS: &[&str] = &["newUuid"];

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    /// `{{name}}` at 1-based `line:col` of the file; `json_string` when it
    /// stands inside a JSON string of a JSON body (its value is JSON-escaped).
    Expr {
        name: String,
        line: usize,
        col: usize,
        json_string: bool,
    },
}

/// A string with `{{name}}` placeholders.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderError {
    pub variable: String,
    pub line: usize,
    pub col: usize,
}

impl Template {
    pub fn literal(text: impl Into<String>) -> Self {
        Self {
            parts: vec![Part::Lit(text.into())],
        }
    }

    pub fn push_char(&mut self, c: char) {
        if let Some(Part::Lit(s)) = self.parts.last_mut() {
            s.push(c);
        } else {
            self.parts.push(Part::Lit(c.to_string()));
        }
    }

    pub fn push_str(&mut self, text: &str) {
        for c in text.chars() {
            self.push_char(c);
        }
    }

    /// The single variable this template consists of, e.g. `{{id}}` → `id`.
    pub fn single_expr(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Expr { name, .. }] => Some(name),
            _ => None,
        }
    }

    /// The source form, with `{{…}}` kept.
    pub fn source(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Expr { name, .. } => {
                    out.push_str("{{");
                    out.push_str(name);
                    out.push_str("}}");
                }
            }
        }
        out
    }

    /// Names of the variables used (functions excluded).
    pub fn variables(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Expr { name, .. } if !FUNCTIONS.contains(&name.as_str()) => {
                    Some(name.as_str())
                }
                _ => None,
            })
            .collect()
    }

    /// Expands the template; a variable that is not set is an error naming it.
    pub fn render(&self, vars: &Variables) -> Result<String, RenderError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Expr {
                    name,
                    line,
                    col,
                    json_string,
                } => {
                    let value = lookup(name, vars).ok_or_else(|| RenderError {
                        variable: name.clone(),
                        line: *line,
                        col: *col,
                    })?;
                    let text = value_to_text(&value);
                    if *json_string {
                        let quoted = Value::String(text).to_string();
                        out.push_str(&quoted[1..quoted.len() - 1]);
                    } else {
                        out.push_str(&text);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A variable's value, or a built-in function's result.
pub fn lookup(name: &str, vars: &Variables) -> Option<Value> {
    if let Some(v) = vars.get(name) {
        return Some(v.clone());
    }
    match name {
        "newUuid" => Some(Value::String(new_uuid())),
        _ => None,
    }
}

/// How a value is written into a URL, header or body: strings raw, the rest as JSON.
pub fn value_to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A random (version 4) UUID, from the standard library's seeded hasher.
pub fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Is `name` a valid variable name (`[A-Za-z_][A-Za-z0-9_-]*`)?
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
