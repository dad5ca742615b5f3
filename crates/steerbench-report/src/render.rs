//! `render`: the only function here that touches the filesystem. Writes
//! `report.md`, `plots/<name>.{svg,png}` and `tables/<name>.{csv,tex}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cautions::{self, CautionNote};
use crate::data::{BaselineKind, ReportData};
use crate::error::{io_err, Result};
use crate::plots::{self, Figure, PlotKind};
use crate::summary::summary;
use crate::tables;
use crate::template;

#[derive(Debug, Clone, PartialEq)]
pub struct PlotFiles {
    pub name: String,
    pub kind: PlotKind,
    pub svg: PathBuf,
    pub png: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableFiles {
    pub name: String,
    pub csv: PathBuf,
    pub tex: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderedReport {
    pub markdown: PathBuf,
    pub plots: Vec<PlotFiles>,
    pub tables: Vec<TableFiles>,
}

/// A figure as the template sees it (paths relative to report.md).
#[derive(Serialize)]
struct PlotRef<'a> {
    name: &'a str,
    kind: PlotKind,
    title: &'a str,
    caption: &'a str,
    svg: String,
    png: String,
}

#[derive(Serialize)]
struct Context<'a> {
    data: &'a ReportData,
    summary: String,
    tables: BTreeMap<&'static str, String>,
    tables_exported: Vec<&'static str>,
    /// Aligned markdown of each generation, index-aligned with `data.generations`.
    generation_tables: Vec<String>,
    plots: Vec<PlotRef<'a>>,
    /// Control kinds (`random`, `shuffled`) that some main row carries, in table order.
    controls: Vec<&'static str>,
    /// True when a `BaselineRow` is a vector control (older pipelines).
    vector_baselines: bool,
    /// One note per `data.cautions` item, with the section it goes in.
    cautions: Vec<CautionNote>,
    /// The cross-behaviour scorecard; None with fewer than two behaviours.
    scorecard: Option<crate::scorecard::Scorecard>,
    /// The degradation tables have a tool-accuracy column.
    tool_accuracy: bool,
    /// The generation table has tool-call columns.
    tool_calls: bool,
}

/// The markdown alone, for the figures `plots::figures(data)` plans (pure apart from
/// reading a user template). `render` writes exactly this string to report.md.
pub fn render_markdown(data: &ReportData, template: Option<&Path>) -> Result<String> {
    let figures = plots::figures(data);
    markdown_for(data, &figures, template)
}

fn markdown_for(data: &ReportData, figures: &[Figure], template: Option<&Path>) -> Result<String> {
    let exported = tables::all(data)?;
    let mut md: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut put = |name: &'static str, t: crate::table::Table| {
        if !t.is_empty() {
            md.insert(name, t.to_markdown().trim_end().to_string());
        }
    };
    put("provenance", tables::provenance(data)?);
    put("datasets", tables::datasets(data)?);
    put("stage_times", tables::stage_times(data)?);
    put("setup", tables::setup(data)?);
    put("splits", tables::splits(data)?);
    for t in &exported {
        put(t.name, t.display.clone());
    }
    let mut controls: Vec<BaselineKind> = data
        .main
        .iter()
        .flat_map(|r| r.controls.iter().map(|c| c.kind))
        .collect();
    controls.sort_unstable();
    controls.dedup();
    let ctx = Context {
        data,
        summary: summary(data),
        controls: controls.into_iter().map(BaselineKind::as_str).collect(),
        vector_baselines: data
            .baselines
            .iter()
            .any(|b| matches!(b.baseline, BaselineKind::Random | BaselineKind::Shuffled)),
        cautions: cautions::notes(data),
        scorecard: crate::scorecard::build(&data.behaviours),
        tool_accuracy: tables::has_tool_accuracy(&data.degradation),
        tool_calls: data
            .generation_quality
            .iter()
            .any(|r| r.tool_call_json.is_some() || r.tool_call_valid.is_some()),
        tables: md,
        tables_exported: exported.iter().map(|t| t.name).collect(),
        generation_tables: data
            .generations
            .iter()
            .map(|g| tables::generation(g).map(|t| t.to_markdown().trim_end().to_string()))
            .collect::<Result<_>>()?,
        plots: figures
            .iter()
            .map(|f| PlotRef {
                name: &f.name,
                kind: f.kind,
                title: &f.title,
                caption: &f.caption,
                svg: format!("plots/{}.svg", f.name),
                png: format!("plots/{}.png", f.name),
            })
            .collect(),
    };
    let (env, name) = template::environment(template)?;
    let out = env.get_template(&name)?.render(&ctx)?;
    Ok(tidy(&out))
}

/// Collapses runs of blank lines and ends with exactly one newline, so template
/// whitespace never shows in the output.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out += line;
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    std::fs::write(path, contents).map_err(io_err(path))
}

/// Renders the whole report into `out_dir` (created if needed). Same data → byte-identical
/// report.md, SVGs and CSVs.
pub fn render(
    data: &ReportData,
    out_dir: &Path,
    template: Option<&Path>,
) -> Result<RenderedReport> {
    let plots_dir = out_dir.join("plots");
    let tables_dir = out_dir.join("tables");
    for dir in [out_dir, &plots_dir, &tables_dir] {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // Render the markdown first: a broken user template fails before any file is written.
    let figures = plots::figures(data);
    let markdown = markdown_for(data, &figures, template)?;

    let mut table_files = Vec::new();
    for t in tables::all(data)? {
        let csv = tables_dir.join(format!("{}.csv", t.name));
        let tex = tables_dir.join(format!("{}.tex", t.name));
        write(&csv, t.raw.to_csv()?.as_bytes())?;
        write(
            &tex,
            t.display.to_latex(&t.full_caption(), t.name).as_bytes(),
        )?;
        table_files.push(TableFiles {
            name: t.name.to_string(),
            csv,
            tex,
        });
    }

    let mut plot_files = Vec::new();
    for fig in &figures {
        let svg = plots_dir.join(format!("{}.svg", fig.name));
        let png = plots_dir.join(format!("{}.png", fig.name));
        write(&svg, plots::render_svg(fig)?.as_bytes())?;
        plots::render_png(fig, &png)?;
        plot_files.push(PlotFiles {
            name: fig.name.clone(),
            kind: fig.kind,
            svg,
            png,
        });
    }

    let md_path = out_dir.join("report.md");
    write(&md_path, markdown.as_bytes())?;
    Ok(RenderedReport {
        markdown: md_path,
        plots: plot_files,
        tables: table_files,
    })
}

#[cfg(test)]
mod tests {
    use super::tidy;

    #[test]
    fn tidy_collapses_blank_lines() {
        assert_eq!(tidy("\n# A\n\n\n\ntext  \n\n"), "# A\n\ntext\n");
    }
}
