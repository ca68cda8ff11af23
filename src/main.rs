use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cert_assistant::cli::Cli::parse();
    match cert_assistant::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line: what failed, and why.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
