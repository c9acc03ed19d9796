//! `tessera`: the command line client. All of it lives in the library so
//! tests can drive it in-process.

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
