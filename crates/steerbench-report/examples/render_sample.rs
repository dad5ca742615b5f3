//! Renders the synthetic sample report:
//! `cargo run -p steerbench-report --example render_sample -- /tmp/report_sample [--large]`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "report_sample".into());
    // `--large`: many methods, layers and multipliers, to check that the figures scale.
    let data = if args.iter().any(|a| a == "--large") {
        common::sample_large()
    } else {
        common::sample()
    };
    let rendered = steerbench_report::render(&data, std::path::Path::new(&out), None)?;
    println!("{}", rendered.markdown.display());
    for p in &rendered.plots {
        println!("{}", p.png.display());
    }
    Ok(())
}
