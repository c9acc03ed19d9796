//! The `tessera` command line, built inside this package so the end-to-end
//! tests can run it as a real process (`CARGO_BIN_EXE_tessera-e2e-cli`).
//! Same library, same main as `crates/cli/src/main.rs`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let code = tessera_cli::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await;
    ExitCode::from(code)
}
