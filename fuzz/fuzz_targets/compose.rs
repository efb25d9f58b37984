//! The Compose subset's parser: any text gives a model or a positioned error;
//! a model's start order contains every service exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let vars = |name: &str| (name == "SET").then(|| "value".to_string());
    match valero_compose::parse(text, "compose.yaml", &vars) {
        Ok(compose) => {
            let order = compose.start_order();
            assert_eq!(
                order.len(),
                compose.services.len(),
                "start order loses services"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
