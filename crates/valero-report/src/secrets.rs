//! Secret masking: every secret value, and its base64 and URL-encoded forms,
//! is replaced by `***` in logs, reports, run records and captured output.
//!
//! Masking is applied at the edges where plugin text leaves the sandbox
//! (log lines as they arrive, captured output and stage reports when an
//! attempt ends), so nothing downstream — terminal, JSON/JUnit/Markdown
//! reports, records — ever holds a secret. A secret written in pieces on
//! consecutive lines of one stream is masked in every piece (see [`lines`]).
//! Reports are masked field by field (see [`report`]): masking cannot fail,
//! so it never falls back to the unmasked text. Known limit: a secret
//! embedded in a larger encoded blob (e.g. base64 of `user:password`) is not
//! recognisable.

mod lines;
mod report;

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

pub use lines::HeldLines;
pub use report::Maskable;

pub const MASK: &str = "***";

/// Values shorter than this are not masked (they would blank out ordinary
/// text); `valero validate`/`run` warn about them.
pub const MIN_MASKED_LEN: usize = 3;

#[derive(Debug, Default, Clone)]
pub struct Masker {
    /// Every form of every secret, longest first (so a longer form is
    /// replaced before a shorter one that is part of it).
    patterns: Vec<String>,
}

impl Masker {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut patterns: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .flat_map(forms)
            .filter(|f| f.len() >= MIN_MASKED_LEN)
            .collect();
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        patterns.dedup();
        Masker { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn mask<'s>(&self, s: &'s str) -> Cow<'s, str> {
        if !self.patterns.iter().any(|p| s.contains(p.as_str())) {
            return Cow::Borrowed(s);
        }
        let mut out = s.to_string();
        for p in &self.patterns {
            if out.contains(p.as_str()) {
                out = out.replace(p.as_str(), MASK);
            }
        }
        Cow::Owned(out)
    }

    /// Masks every string (keys too) inside a JSON value.
    pub fn mask_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                if let Cow::Owned(m) = self.mask(s) {
                    *s = m;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.mask_json(&mut v);
                    map.insert(self.mask(&k).into_owned(), v);
                }
            }
            _ => {}
        }
    }

    /// `value` with every piece of its text masked (see [`Maskable`]).
    pub fn masked<T: Maskable>(&self, mut value: T) -> T {
        if !self.is_empty() {
            value.mask_with(self);
        }
        value
    }
}

/// The forms a secret is recognised in.
fn forms(v: &str) -> Vec<String> {
    let b = v.as_bytes();
    let mut forms = Vec::new();
    if v.contains('\n') {
        // A multi-line secret (a key, a certificate) as streams are masked:
        // without its line breaks (see `lines`), and with CRLF ones.
        forms.push(v.replace("\r\n", "").replace('\n', ""));
        forms.push(v.replace("\r\n", "\n").replace('\n', "\r\n"));
    }
    forms.extend([
        v.to_string(),
        STANDARD.encode(b),
        STANDARD_NO_PAD.encode(b),
        URL_SAFE.encode(b),
        URL_SAFE_NO_PAD.encode(b),
        percent_encode(v, false, true),
        percent_encode(v, false, false),
        percent_encode(v, true, true),
    ]);
    forms
}

/// RFC 3986 percent-encoding of everything but unreserved characters;
/// `form` encodes space as `+` (application/x-www-form-urlencoded).
fn percent_encode(v: &str, form: bool, upper: bool) -> String {
    let mut out = String::new();
    for &byte in v.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' if form => out.push('+'),
            _ if upper => out.push_str(&format!("%{byte:02X}")),
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "p@ss w/rd:42";

    #[test]
    fn masks_plain_base64_and_url_encoded_forms() {
        let m = Masker::new([SECRET]);
        let text = format!(
            "plain={SECRET} b64={} url={} form={}",
            STANDARD.encode(SECRET),
            "p%40ss%20w%2Frd%3A42",
            "p%40ss+w%2Frd%3A42"
        );
        assert_eq!(m.mask(&text), "plain=*** b64=*** url=*** form=***");
    }

    #[test]
    fn masks_json_keys_values_and_bytes() {
        let m = Masker::new([SECRET]);
        let mut v = serde_json::json!({ SECRET: [format!("x{SECRET}y"), 3] });
        m.mask_json(&mut v);
        assert_eq!(v, serde_json::json!({ "***": ["x***y", 3] }));
        assert_eq!(
            m.mask_lines(format!("a{SECRET}b").as_bytes(), false),
            b"a***b"
        );
    }

    #[test]
    fn a_secret_cut_by_the_output_cap_is_masked() {
        let m = Masker::new([SECRET]);
        let cut = format!("log: {}", &SECRET[..5]);
        assert_eq!(m.mask_lines(cut.as_bytes(), true), b"log: ***");
        // Without truncation a harmless prefix stays.
        assert_eq!(m.mask_lines(b"log: p", false), b"log: p");
    }

    #[test]
    fn a_cut_secret_overlapping_a_whole_one_is_masked_without_a_panic() {
        // Found by fuzzing: the trailing partial match (`\t\t`) lies inside
        // the whole match (`\t\t\t`) before it.
        let m = Masker::new(["\t\t\t"]);
        assert_eq!(m.mask_lines(b"abcd\t\t\t", true), b"abcd***");
    }

    #[test]
    fn a_multi_line_secret_is_masked_across_lines_and_line_endings() {
        // Found by fuzzing: a key printed line by line never holds the `\n`s.
        let key = "-----BEGIN KEY-----\nMIIEabc\n-----END KEY-----";
        let m = Masker::new([key]);
        let crlf = key.replace('\n', "\r\n");
        assert_eq!(m.mask(&format!("k={crlf}")), "k=***");
        assert_eq!(m.mask_lines(crlf.as_bytes(), false), b"***\r\n***\r\n***");
    }

    #[test]
    fn short_values_are_not_masked() {
        let m = Masker::new(["ab"]);
        assert!(m.is_empty());
        assert_eq!(m.mask("abc"), "abc");
    }
}
