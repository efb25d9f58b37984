//! Parse compose files and print the model, or the first error:
//! `cargo run -p valero-compose --example check -- compose.yaml…`
//! Variables come from this process's environment.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{path}: {e}");
                status = ExitCode::FAILURE;
                continue;
            }
        };
        match valero_compose::parse(&text, &path, &|name| std::env::var(name).ok()) {
            Ok(compose) => {
                let order: Vec<&str> = compose
                    .start_order()
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                println!("{path}: start order {}", order.join(", "));
                println!("{compose:#?}");
            }
            Err(e) => {
                eprintln!("{e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
