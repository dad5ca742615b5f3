use std::process::ExitCode;

use clap::Parser;
use steerbench::cli::{self, App, Cli};
use steerbench::plan::LocalEnvironment;
use steerbench::runtime::{embedded_builtins, RuntimeProbe};
use steerbench::stages::{self, Services};

fn main() -> ExitCode {
    // Errors are messages for users: keep library backtraces (candle captures one into an
    // error's text whenever RUST_BACKTRACE is set) out of them unless asked for with
    // RUST_LIB_BACKTRACE. Panics still honour RUST_BACKTRACE. Set before any thread starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    let mut environment = LocalEnvironment::new(embedded_builtins(), RuntimeProbe);
    environment.remote = steerbench::runtime::dataset_store();
    let app = App {
        registry: stages::registry(),
        services: Services::new(),
        environment: Box::new(environment),
    };
    cli::run(app, cli)
}
