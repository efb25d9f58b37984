//! pipeline.toml parsing and validation: any text gives a pipeline or
//! diagnostics (never a panic), and every diagnostic points inside the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use valero_pipeline::{LoadOptions, parse_str};

fuzz_target!(|text: &str| {
    let file = Path::new("/nonexistent/valero-fuzz/pipeline.toml");
    if let Err(diags) = parse_str(text, file, &LoadOptions::default()) {
        let lines = text.split('\n').count();
        for d in &diags.0 {
            assert!(
                d.line as usize <= lines + 1,
                "diagnostic at line {} of a {lines}-line text: {}",
                d.line,
                d.message
            );
        }
        // Rendering (rustc-style, with the source line) must not panic either.
        let _ = diags.to_string();
    }
});
