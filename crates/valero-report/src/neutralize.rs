//! Making plugin text inert before it is shown, stored or passed on.
//!
//! Two kinds of text hide in what a plugin hands the host:
//!
//! * terminal control: ESC, BEL and other control characters (except newline
//!   and tab) and bidi overrides become visible `\x1b`-style escapes, so a
//!   plugin cannot recolour, move the cursor, retitle or clear a terminal;
//! * GitHub Actions workflow commands: the runner reads every line of a job's
//!   output and obeys `::command …` at the start of a line (after whitespace)
//!   and `##[command]` anywhere in it. A line of plugin text that starts with
//!   `::` gets its first colon escaped (`\x3a:`) and `##[` becomes `#\x23[`.
//!   This is done always, not only under `GITHUB_ACTIONS`, so run records
//!   shown later in a CI job (`valero runs show`) are just as inert.
//!
//! Both are idempotent: neutralised text comes out unchanged.

use serde_json::Value;

/// Neutralises plugin text for terminals, CI logs and reports (see the module docs).
pub fn neutralize(s: &str) -> String {
    let escaped = escape_controls(s);
    if !escaped.contains(':') && !escaped.contains("##[") {
        return escaped;
    }
    let mut out = String::with_capacity(escaped.len() + 8);
    for (i, line) in escaped.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let body = line.trim_start();
        out.push_str(&line[..line.len() - body.len()]);
        // A lone `:` at the end of a piece could meet a `:` of whatever text
        // follows it on the line; escape it too.
        let body = match body.strip_prefix(':') {
            Some(rest) if rest.is_empty() || rest.starts_with(':') => {
                out.push_str("\\x3a");
                rest
            }
            _ => body,
        };
        push_without_legacy_commands(&mut out, body);
    }
    out
}

/// Neutralises every string and key inside a JSON value (a plugin's
/// `outputs`): control characters and `##[`. A string inside JSON never
/// starts a line of output (its quote does), and `::` at the start is
/// ordinary data there (e.g. the address `::1`), so it is kept.
pub fn neutralize_json(value: &mut Value) {
    let clean = |s: &str| {
        let escaped = escape_controls(s);
        if escaped.contains("##[") {
            let mut out = String::with_capacity(escaped.len() + 4);
            push_without_legacy_commands(&mut out, &escaped);
            out
        } else {
            escaped
        }
    };
    match value {
        Value::String(s) => *s = clean(s),
        Value::Array(items) => items.iter_mut().for_each(neutralize_json),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                neutralize_json(&mut v);
                map.insert(clean(&k), v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Appends `s` with every `##[` (a legacy workflow command, obeyed anywhere
/// in a line) broken up as `#\x23[`.
fn push_without_legacy_commands(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(at) = rest.find("##[") {
        out.push_str(&rest[..at]);
        out.push_str("#\\x23[");
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
}

/// ESC and other control characters (except newline and tab) and bidi
/// overrides as visible escapes.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                let code = c as u32;
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{code:x}}}"));
                }
            }
            // Bidi overrides can disguise text in a terminal or a review.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralize_escapes_controls_but_keeps_text() {
        assert_eq!(
            neutralize("\x1b[31mred\x1b[0m\tok\n\x07"),
            "\\x1b[31mred\\x1b[0m\tok\n\\x07"
        );
        assert_eq!(neutralize("a\u{9b}b"), "a\\x9bb");
        assert_eq!(neutralize("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn no_line_of_plugin_text_starts_a_workflow_command() {
        assert_eq!(
            neutralize("ok\n::set-output name=x::1\n  \t::add-mask::s"),
            "ok\n\\x3a:set-output name=x::1\n  \t\\x3a:add-mask::s"
        );
        // Unicode spaces are trimmed by the runner too; CR is a control.
        assert_eq!(neutralize("\u{a0}::e"), "\u{a0}\\x3a:e");
        assert_eq!(neutralize("a\r::e"), "a\\x0d::e");
        // A trailing lone colon could meet the next piece's colon.
        assert_eq!(neutralize("x\n:"), "x\n\\x3a");
        // Colons elsewhere are text.
        assert_eq!(neutralize("a::b :: c\n: d"), "a::b :: c\n: d");
    }

    #[test]
    fn legacy_commands_are_broken_up_anywhere() {
        assert_eq!(
            neutralize("x ##[set-output name=a;]b ###[c"),
            "x #\\x23[set-output name=a;]b ##\\x23[c"
        );
        for s in ["##[", "###[[##[", ":: ##[x\n ::y", "\x1b::"] {
            let once = neutralize(s);
            assert!(!once.contains("##["), "{once}");
            assert_eq!(neutralize(&once), once, "not idempotent on {s:?}");
        }
    }

    #[test]
    fn json_strings_and_keys_lose_controls_and_legacy_commands_only() {
        let mut v = serde_json::json!({
            "k\u{1b}": ["\u{1b}[31mred\u{7}", "::1", "##[x]", 3, null],
        });
        neutralize_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({ "k\\x1b": ["\\x1b[31mred\\x07", "::1", "#\\x23[x]", 3, null] })
        );
    }
}
