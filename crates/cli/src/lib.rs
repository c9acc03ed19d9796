//! `tessera`, the command line client of Tessera's services, and `tessera
//! dev`, the whole system in one process.
//!
//! It owns argument parsing ([`args`]), the saved session
//! (`session_file`), turning answers into text or JSON (`output`) and gRPC
//! statuses into one line a person can act on ([`error`]). Exit codes: 0
//! success, 1 a failed operation, 2 a usage error.

pub mod args;
mod commands;
pub mod error;
mod output;
mod session_file;

use clap::{CommandFactory, Parser};
use std::ffi::OsString;
use std::io::Write;

pub use error::CliError;

/// Runs the command line `argv`, writing results to `out` and problems to
/// `err`; returns the exit code.
pub async fn run<I, T>(argv: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match args::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            let _ = if code == 0 {
                out.write_all(text.as_bytes())
            } else {
                err.write_all(text.as_bytes())
            };
            return code;
        }
    };
    if let args::Command::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut args::Cli::command(), "tessera", out);
        return 0;
    }
    let json = cli.global.output == args::Output::Json;
    match commands::run(cli, out).await {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            // A script reading stdout gets a document on failure too.
            if json && !matches!(e, error::CliError::Answered(_)) {
                let doc = serde_json::json!({ "ok": false, "error": e.to_string() });
                let _ = writeln!(out, "{doc}");
            }
            e.exit_code()
        }
    }
}
