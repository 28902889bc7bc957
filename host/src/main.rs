use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match switchyard::cli::run(switchyard::cli::Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
