//! The Hurl subset's parser: any text parses or is refused with a position.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = valero_hurl::parse("fuzz.hurl", text) {
        let _ = e.to_string();
    }
});
