fn main() -> std::process::ExitCode {
    neuroerp::cli::main()
}
