//! steerbench-report: a paper-ready markdown report (minijinja), plots (plotters, bundled
//! font, SVG + PNG) and CSV/LaTeX tables, rendered from a plain [`ReportData`].
//!
//! ```no_run
//! # fn demo(data: &steerbench_report::ReportData) -> steerbench_report::Result<()> {
//! let out = steerbench_report::render(data, std::path::Path::new("runs/quickstart/report"), None)?;
//! println!("{}", out.markdown.display());
//! # Ok(()) }
//! ```

pub mod cautions;
pub mod data;
mod error;
pub mod format;
pub mod plots;
mod render;
pub mod scorecard;
mod summary;
pub mod table;
pub mod tables;
pub mod template;

pub use data::*;
pub use error::{ReportError, Result};
pub use render::{render, render_markdown, PlotFiles, RenderedReport, TableFiles};
pub use summary::summary;
