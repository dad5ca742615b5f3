//! Renders the synthetic sample report: `cargo run -p steerbench-report --example render_sample -- /tmp/report_sample`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "report_sample".into());
    let rendered = steerbench_report::render(&common::sample(), std::path::Path::new(&out), None)?;
    println!("{}", rendered.markdown.display());
    for p in &rendered.plots {
        println!("{}", p.png.display());
    }
    Ok(())
}
