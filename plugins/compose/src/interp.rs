//! Compose variable interpolation in scalar values: `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `$VAR`, and `$$` for a
//! literal `$`. Defaults may themselves contain interpolations.

/// Why interpolation failed; the caller adds the scalar's position.
#[derive(Debug, PartialEq)]
pub(crate) struct Failure {
    pub message: String,
    pub hint: Option<String>,
}

fn fail(message: String, hint: Option<&str>) -> Failure {
    Failure {
        message,
        hint: hint.map(str::to_owned),
    }
}

fn name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub(crate) fn interpolate(
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Failure> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let body_and_more = &after[1..];
                let end = closing_brace(body_and_more).ok_or_else(|| {
                    fail(
                        format!("unterminated `${{` in `{text}`"),
                        Some("close it with `}`; write `$$` for a literal `$`"),
                    )
                })?;
                out.push_str(&braced(&body_and_more[..end], vars)?);
                rest = &body_and_more[end + 1..];
            }
            Some(c) if name_start(c) => {
                let len = after.find(|c: char| !name_char(c)).unwrap_or(after.len());
                let name = &after[..len];
                out.push_str(&lookup(name, vars)?);
                rest = &after[len..];
            }
            _ => {
                return Err(fail(
                    format!("invalid interpolation `$` in `{text}`"),
                    Some("write `$$` for a literal `$`, `${NAME}` or `$NAME` for a variable"),
                ));
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Byte index of the `}` that closes a `${`, counting nested `${…}`.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut prev_dollar = false;
    for (i, c) in s.char_indices() {
        match c {
            '{' if prev_dollar => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
        prev_dollar = c == '$' && !prev_dollar;
    }
    None
}

fn lookup(name: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, Failure> {
    vars(name).ok_or_else(|| {
        fail(
            format!("variable `{name}` is not set"),
            Some(&format!(
                "set it, or give a default: `${{{name}:-default}}`"
            )),
        )
    })
}

/// The inside of `${…}`: a name, then optionally an operator and its argument.
fn braced(body: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, Failure> {
    let len = body.find(|c: char| !name_char(c)).unwrap_or(body.len());
    let (name, op) = body.split_at(len);
    if name.is_empty() || !name.starts_with(name_start) {
        return Err(fail(
            format!("invalid variable name in `${{{body}}}`"),
            Some("names are letters, digits and `_`, not starting with a digit"),
        ));
    }
    let value = vars(name);
    // `:-`/`:?` treat an empty value like an unset one; `-`/`?` only unset.
    let (op, arg, empty_is_unset) = if let Some(arg) = op.strip_prefix(":-") {
        ("-", arg, true)
    } else if let Some(arg) = op.strip_prefix(":?") {
        ("?", arg, true)
    } else if let Some(arg) = op.strip_prefix('-') {
        ("-", arg, false)
    } else if let Some(arg) = op.strip_prefix('?') {
        ("?", arg, false)
    } else if op.is_empty() {
        return lookup(name, vars);
    } else {
        return Err(fail(
            format!("unsupported interpolation `${{{body}}}`"),
            Some(
                "supported: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME, $$",
            ),
        ));
    };
    let value = value.filter(|v| !(empty_is_unset && v.is_empty()));
    match (value, op) {
        (Some(v), _) => Ok(v),
        (None, "-") => interpolate(arg, vars),
        (None, _) => {
            let why = interpolate(arg, vars)?;
            let why = if why.is_empty() {
                "required".to_owned()
            } else {
                why
            };
            Err(fail(format!("variable `{name}` is not set: {why}"), None))
        }
    }
}
