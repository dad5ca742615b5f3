use std::process::ExitCode;

use clap::Parser;
use steerbench::cli::{self, App, Cli};
use steerbench::plan::LocalEnvironment;
use steerbench::runtime::{embedded_builtins, RuntimeProbe};
use steerbench::stages::{self, Services};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let app = App {
        registry: stages::registry(),
        services: Services::new(),
        environment: Box::new(LocalEnvironment::new(embedded_builtins(), RuntimeProbe)),
    };
    cli::run(app, cli)
}
