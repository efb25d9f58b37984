fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(valero::cli::main().code())
}
