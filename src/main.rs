//! The `dtdcert` binary: parse arguments, run the library, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use dtdcert::cli::{run, Cli, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Found) => ExitCode::from(1),
        Err(err @ dtdcert::error::Error::Interrupted { .. }) => {
            eprintln!("{err}");
            ExitCode::from(err.exit_code())
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(err.exit_code())
        }
    }
}
