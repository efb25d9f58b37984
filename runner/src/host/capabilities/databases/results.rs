//! Query results as the JSON array the guest receives, built while the rows
//! stream in and stopped at the host's limits: the statement itself is never
//! rewritten to bound it.

use serde_json::{Map, Value};

/// Rows one statement may return; more is an error (add a LIMIT).
pub const MAX_ROWS: usize = 10_000;
/// Bytes of JSON one statement may return (what the host holds for it, and
/// what it copies into the guest).
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// A result that broke a limit.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LimitError {
    #[error(
        "the statement returned more than {0} rows (the host's row limit)\n  help: add a LIMIT or aggregate"
    )]
    Rows(usize),
    #[error(
        "the result is larger than {} MiB (the host's byte limit for one statement)\n  help: select fewer or shorter columns, or add a LIMIT",
        .0 / (1024 * 1024)
    )]
    Bytes(usize),
}

/// The JSON array being built, within `max_rows` and `max_bytes`.
pub struct RowsJson {
    out: String,
    rows: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl Default for RowsJson {
    fn default() -> Self {
        RowsJson::new(MAX_ROWS, MAX_BYTES)
    }
}

impl RowsJson {
    pub fn new(max_rows: usize, max_bytes: usize) -> Self {
        RowsJson {
            out: String::from("["),
            rows: 0,
            max_rows,
            max_bytes,
        }
    }

    /// Refuses a value of `len` raw bytes before it is copied (a 50 MB
    /// column is turned away without a second 50 MB).
    pub fn check_value(&self, len: usize) -> Result<(), LimitError> {
        if self.out.len().saturating_add(len) > self.max_bytes {
            return Err(LimitError::Bytes(self.max_bytes));
        }
        Ok(())
    }

    /// A row is about to be read: refuses the row after the last allowed.
    pub fn check_row(&self) -> Result<(), LimitError> {
        if self.rows == self.max_rows {
            return Err(LimitError::Rows(self.max_rows));
        }
        Ok(())
    }

    pub fn push(&mut self, row: Map<String, Value>) -> Result<(), LimitError> {
        self.check_row()?;
        let text = Value::Object(row).to_string();
        // +2: the separating comma and the closing bracket.
        if self.out.len() + text.len() + 2 > self.max_bytes {
            return Err(LimitError::Bytes(self.max_bytes));
        }
        if self.rows > 0 {
            self.out.push(',');
        }
        self.out.push_str(&text);
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> String {
        self.out.push(']');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("v".into(), Value::from(v));
        m
    }

    #[test]
    fn rows_become_one_json_array() {
        let mut r = RowsJson::new(3, 1024);
        assert_eq!(RowsJson::new(3, 1024).finish(), "[]");
        r.push(row("a")).unwrap();
        r.push(row("b")).unwrap();
        assert_eq!(r.finish(), r#"[{"v":"a"},{"v":"b"}]"#);
    }

    #[test]
    fn the_row_after_the_limit_is_refused_and_named() {
        let mut r = RowsJson::new(2, 1024);
        r.push(row("a")).unwrap();
        r.push(row("b")).unwrap();
        let e = r.push(row("c")).unwrap_err();
        assert_eq!(e, LimitError::Rows(2));
        assert!(e.to_string().contains("more than 2 rows"), "{e}");
    }

    #[test]
    fn bytes_are_capped_before_and_after_a_value_is_copied() {
        let mut r = RowsJson::new(100, 2 * 1024 * 1024);
        r.push(row(&"x".repeat(1024 * 1024))).unwrap();
        // The next big value is refused from its raw length alone.
        let e = r.check_value(1024 * 1024 + 1).unwrap_err();
        assert!(e.to_string().contains("larger than 2 MiB"), "{e}");
        // And a row whose JSON crosses the cap is not kept.
        assert_eq!(
            r.push(row(&"y".repeat(1024 * 1024))),
            Err(LimitError::Bytes(2 * 1024 * 1024))
        );
        assert!(r.finish().len() < 2 * 1024 * 1024);
    }
}
