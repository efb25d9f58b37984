//! Load-time problems with a location in pipeline.toml, rendered like rustc.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem, located in the source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the caller named it.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no location in the file
    /// (the file could not be read).
    pub line: usize,
    /// 1-based column, counted in chars.
    pub col: usize,
    /// Number of chars underlined (at least 1, clipped to the end of `source_line`).
    pub len: usize,
    pub message: String,
    pub help: Option<String>,
    /// The whole source line the problem starts on (without the line break).
    pub source_line: String,
}

impl Diagnostic {
    /// Locates the byte range `span` of `source`. Out-of-range or mid-char
    /// offsets are clamped, never a panic.
    pub fn at(
        file: &Path,
        source: &str,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        let mut start = span.start.min(source.len());
        while !source.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end.clamp(start, source.len());
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let col = source[line_start..start].chars().count() + 1;
        let len = source[start..end.min(line_end)].chars().count().max(1);
        let source_line = source[line_start..line_end]
            .strip_suffix('\r')
            .unwrap_or(&source[line_start..line_end])
            .to_string();
        Diagnostic {
            file: file.to_path_buf(),
            line,
            col,
            len,
            message: message.into(),
            help,
            source_line,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        writeln!(f, "error: {}", self.message)?;
        if self.line == 0 {
            // Not located in the file (e.g. the file cannot be read).
            writeln!(f, " --> {}", self.file.display())?;
            if let Some(help) = &self.help {
                writeln!(f, "  = help: {help}")?;
            }
            return Ok(());
        }
        writeln!(
            f,
            "{pad}--> {}:{}:{}",
            self.file.display(),
            self.line,
            self.col
        )?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{num} | {}", self.source_line)?;
        // Keep tabs so the carets line up under the source in any terminal.
        let indent: String = self
            .source_line
            .chars()
            .take(self.col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        writeln!(f, "{pad} | {indent}{}", "^".repeat(self.len.max(1)))?;
        if let Some(help) = &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one file, in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        let plural = if n == 1 { "problem" } else { "problems" };
        match self.0.first() {
            Some(d) => write!(f, "error: {n} {plural} found in {}", d.file.display()),
            None => write!(f, "error: {n} {plural} found"),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_by_chars_and_clips_to_line() {
        let src = "a = 1\n  \"ü\" = [\n 1 ]\n";
        let start = src.find("= [").unwrap_or(0);
        let d = Diagnostic::at(Path::new("p.toml"), src, start..src.len(), "m", None);
        assert_eq!((d.line, d.col), (2, 7));
        assert_eq!(d.len, 3);
        assert_eq!(d.source_line, "  \"ü\" = [");
    }

    #[test]
    fn clamps_out_of_range_spans() {
        let d = Diagnostic::at(Path::new("p.toml"), "ab", 10..20, "m", None);
        assert_eq!((d.line, d.col, d.len), (1, 3, 1));
        let d = Diagnostic::at(Path::new("p.toml"), "", 0..0, "m", None);
        assert_eq!((d.line, d.col, d.len), (1, 1, 1));
        let d = Diagnostic::at(Path::new("p.toml"), "x\r\ny", 0..1, "m", None);
        assert_eq!(d.source_line, "x");
    }

    #[test]
    fn renders_like_rustc() {
        let src = "[stages.health]\ntimout = \"60s\"\n";
        let d = Diagnostic::at(
            Path::new("pipeline.toml"),
            src,
            16..22,
            "unknown key `timout` in stage `health`",
            Some("did you mean `timeout`?".into()),
        );
        let all = Diagnostics(vec![d]);
        assert_eq!(
            all.to_string(),
            "error: unknown key `timout` in stage `health`\n \
             --> pipeline.toml:2:1\n  \
             |\n\
             2 | timout = \"60s\"\n  \
             | ^^^^^^\n  \
             = help: did you mean `timeout`?\n\
             \n\
             error: 1 problem found in pipeline.toml"
        );
    }
}
