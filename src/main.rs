//! `inferbench`: parse the command line, run, and map the outcome to an exit code.
fn main() {
    std::process::exit(inferbench::cli::main());
}
