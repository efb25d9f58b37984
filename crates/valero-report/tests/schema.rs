//! The report types and `docs/report.schema.json` agree: every typed word
//! has exactly the values the schema allows, and a report made of every
//! kind of value validates.

use serde_json::Value;
use valero_report::{
    AttemptEnd, InterruptCause, LoadSource, LogLevel, RunOutcome, StageStatus, Verdict, Word,
};

const SCHEMA: &str = include_str!("../../../docs/report.schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("the schema is JSON")
}

/// The schema's `enum` at a JSON pointer, as strings.
fn allowed(pointer: &str) -> Vec<String> {
    let schema = schema();
    let words = schema
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no enum at {pointer} in docs/report.schema.json"));
    words
        .iter()
        .map(|w| w.as_str().expect("enum values are words").to_string())
        .collect()
}

/// The type's values written out are the schema's, and each schema value
/// reads back as the type.
fn agree<T: Word + std::fmt::Debug + PartialEq>(pointer: &str) {
    let mut written: Vec<String> = T::ALL
        .iter()
        .map(|w| {
            serde_json::to_value(w)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut schema = allowed(&format!("{pointer}/enum"));
    for word in &schema {
        let read: T = serde_json::from_value(Value::from(word.as_str()))
            .unwrap_or_else(|e| panic!("schema word `{word}` at {pointer} has no type: {e}"));
        assert!(T::ALL.contains(&read), "{read:?} is missing from Word::ALL");
    }
    written.sort();
    schema.sort();
    assert_eq!(written, schema, "{pointer}: the type and the schema differ");
}

#[test]
fn run_outcome_matches_the_schema() {
    agree::<RunOutcome>("/properties/outcome");
}

#[test]
fn interrupt_cause_matches_the_schema() {
    agree::<InterruptCause>("/properties/interruption/properties/cause");
}

#[test]
fn stage_status_matches_the_schema() {
    agree::<StageStatus>("/$defs/stage/properties/status");
}

#[test]
fn load_source_matches_the_schema() {
    agree::<LoadSource>("/$defs/load/properties/source");
}

#[test]
fn verdict_matches_the_schema() {
    agree::<Verdict>("/$defs/verdict");
}

#[test]
fn attempt_end_matches_the_schema() {
    agree::<AttemptEnd>("/$defs/attempt/properties/outcome");
}

#[test]
fn log_level_matches_the_schema() {
    agree::<LogLevel>("/$defs/log_line/properties/level");
}

/// Every schema value that names a word is covered above: a new `enum` in
/// the schema fails here until it has a type and a test.
#[test]
fn every_enum_of_the_schema_is_checked() {
    fn enums(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if map.contains_key("enum") {
                    out.push(at.clone());
                }
                for (k, x) in map {
                    enums(
                        x,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    enums(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    enums(&schema(), String::new(), &mut found);
    found.sort();
    let mut checked = vec![
        "/properties/outcome",
        "/properties/interruption/properties/cause",
        "/$defs/stage/properties/status",
        "/$defs/load/properties/source",
        "/$defs/verdict",
        "/$defs/attempt/properties/outcome",
        "/$defs/log_line/properties/level",
    ];
    checked.sort();
    assert_eq!(found, checked);
}
