//! The JSONPath evaluation the Hurl asserts use: the first line is the path,
//! the rest the JSON document. Parsing (through the Hurl crate's guard) and
//! querying never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (path, doc) = text.split_once('\n').unwrap_or((text, "null"));
    let Ok(path) = valero_hurl::run::compile_jsonpath(path) else {
        return;
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(doc) else {
        return;
    };
    let _ = valero_hurl::run::jsonpath_value(&path, &doc);
});
