use std::process::ExitCode;

use clap::Parser;
use steerbench::cli::{self, App, Cli};
use steerbench::exec::Registry;
use steerbench::plan::{BuiltinStore, LocalEnvironment, NoModelRuntime};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Stage kinds are registered here, one line each, e.g.
    // `registry.register(StageKind::Extract, stages::extract::Extract);`
    // (implementations live in src/stages/<kind>.rs; added at integration).
    let registry: Registry<()> = Registry::new();
    let app = App {
        registry,
        services: (),
        // The model runtime replaces `NoModelRuntime` with its `ModelProbe`.
        environment: Box::new(LocalEnvironment::new(BuiltinStore::source_tree(), NoModelRuntime)),
    };
    cli::run(app, cli)
}
