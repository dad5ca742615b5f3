//! Distribution of per-input steerability slopes: one histogram per method on shared bins,
//! anti-steerable bars in red, a dashed line at 0, the anti-steerable share in each caption.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::geometry::{bin_count, extent, histogram, padded_range};
use super::style::{self, font, LegendItem, Swatch};
use super::{DrawResult, Figure, SlopePanel};
use crate::format as f;

const PANEL_W: u32 = 460;
const PANEL_H: u32 = 330;
const TITLE_H: u32 = 46;
const MAX_COLS: usize = 3;

fn legend_items() -> Vec<LegendItem> {
    vec![
        LegendItem {
            label: "anti-steerable input (slope < 0)".into(),
            colour: style::ANTI,
            swatch: Swatch::Bar,
        },
        LegendItem {
            label: "slope = 0".into(),
            colour: BLACK,
            swatch: Swatch::Line,
        },
    ]
}

pub(super) fn size(panels: &[SlopePanel]) -> (u32, u32) {
    let (rows, cols) = style::grid(panels.len(), MAX_COLS);
    let w = (cols as u32 * PANEL_W).max(560);
    (
        w,
        TITLE_H + rows as u32 * PANEL_H + style::legend_height(&legend_items(), w),
    )
}

/// Share of slopes below zero.
pub(crate) fn anti_share(slopes: &[f64]) -> f64 {
    if slopes.is_empty() {
        return 0.0;
    }
    slopes.iter().filter(|s| **s < 0.0).count() as f64 / slopes.len() as f64
}

pub(super) fn draw<DB: DrawingBackend>(
    fig: &Figure,
    panels: &[SlopePanel],
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let items = legend_items();
    let (w, _) = root.dim_in_pixel();
    let body = style::title(root, &fig.title, TITLE_H)?;
    let (_, h) = body.dim_in_pixel();
    let (grid_area, legend_area) = body.split_vertically(h - style::legend_height(&items, w));

    // Shared bins so panels compare; always include 0 so the reference line shows.
    let (lo, hi) = extent(
        panels
            .iter()
            .flat_map(|p| p.slopes.iter().copied())
            .chain([0.0]),
    )
    .unwrap_or((-1.0, 1.0));
    let n_max = panels.iter().map(|p| p.slopes.len()).max().unwrap_or(1);
    let (rows, cols) = style::grid(panels.len(), MAX_COLS);
    for (panel, area) in panels.iter().zip(grid_area.split_evenly((rows, cols))) {
        let hist = histogram(&panel.slopes, lo, hi, bin_count(n_max));
        let (x0, x1) = padded_range(hist.edges[0], *hist.edges.last().unwrap_or(&1.0), 0.03);
        let y1 = *hist.counts.iter().max().unwrap_or(&1) as f64 * 1.12 + 0.5;
        let layer = panel.layer.map_or_else(String::new, |l| format!(" (L{l})"));
        let caption = format!(
            "{}{layer}: {} anti-steerable, n = {}",
            panel.method,
            f::pct(anti_share(&panel.slopes), 0),
            panel.slopes.len()
        );
        let mut chart = ChartBuilder::on(&area)
            .caption(caption, font(style::PANEL_TITLE_SIZE))
            .margin(10)
            .margin_right(22)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..y1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("steerability slope (per unit multiplier)")
            .y_desc("inputs")
            .label_style(font(style::LABEL_SIZE))
            .axis_desc_style(font(style::AXIS_DESC_SIZE))
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&|x| f::axis_value(*x, x0, x1))
            .y_label_formatter(&|y| {
                if y.fract() == 0.0 {
                    format!("{y:.0}")
                } else {
                    String::new()
                }
            })
            .max_light_lines(1)
            .light_line_style(RGBColor(245, 245, 245))
            .bold_line_style(RGBColor(220, 220, 220))
            .draw()?;
        let colour = style::method_colour(&fig.methods, &panel.method);
        chart.draw_series(hist.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(
            |(i, c)| {
                let (a, b) = (hist.edges[i], hist.edges[i + 1]);
                let fill = if b <= 0.0 { style::ANTI } else { colour };
                Rectangle::new([(a, 0.0), (b, *c as f64)], fill.mix(0.85).filled())
            },
        ))?;
        chart.draw_series(DashedLineSeries::new(
            vec![(0.0, 0.0), (0.0, y1)],
            6,
            4,
            BLACK.stroke_width(2),
        ))?;
    }
    style::legend(&legend_area, &items)
}
