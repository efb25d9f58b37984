//! `cargo run -p valero-hurl --example check -- FILE|DIR...`: parse `.hurl` files and print
//! their entries, or the first error as `file:line:col: message`.
fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    match valero_hurl::files::load(&paths) {
        Ok(files) => {
            for l in files {
                println!("{}: {} entries", l.path.display(), l.file.entries.len());
                for e in &l.file.entries {
                    println!(
                        "  {}: {} {} — {}",
                        e.line,
                        e.method,
                        e.url.source(),
                        e.title.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    }
}
