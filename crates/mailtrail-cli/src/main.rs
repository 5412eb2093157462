//! `mailtrail`: parses the arguments, reads the environment, runs one command.

use std::io::{BufWriter, ErrorKind};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mailtrail_cli::{Cli, CliConfig};

#[tokio::main]
async fn main() -> ExitCode {
    // Arguments first, so `--help` works without any environment.
    let cli = Cli::parse();
    let result = async {
        let config = CliConfig::from_env().context("invalid configuration")?;
        let mut out = BufWriter::new(std::io::stdout().lock());
        let mut input = std::io::stdin().lock();
        mailtrail_cli::run(&cli, &config, &mut out, &mut input).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `mailtrail dead list | head` closes the pipe early: that is not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}
