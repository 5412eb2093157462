//! `mailtrail-bench`: parses the arguments, reads the environment, runs one mode.

use std::io::BufWriter;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mailtrail_bench::{BenchArgs, BenchConfig};

#[tokio::main]
async fn main() -> ExitCode {
    // Arguments first, so `--help` works without any environment.
    let args = BenchArgs::parse();
    let result = async {
        let config = BenchConfig::from_env().context("invalid configuration")?;
        let mut out = BufWriter::new(std::io::stdout().lock());
        mailtrail_bench::run(&config, &args, &mut out).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
