//! Metric vs multiplier: one panel per layer (shared axes), one line per method, CI bands.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::geometry::{extent, padded_range, sweep_ticks};
use super::style::{self, font, LegendItem, Swatch};
use super::{CurvePanel, DrawResult, Figure};
use crate::format as f;

const PANEL_W: u32 = 470;
const PANEL_H: u32 = 350;
const TITLE_H: u32 = 46;
const MAX_COLS: usize = 3;
/// At most this many multiplier ticks per panel (a denser sweep gets every k-th value).
const MAX_X_TICKS: usize = 11;

fn legend_items(fig: &Figure, panels: &[CurvePanel]) -> Vec<LegendItem> {
    fig.methods
        .iter()
        .filter(|m| panels.iter().any(|p| p.series.iter().any(|(s, _)| s == *m)))
        .map(|m| LegendItem {
            label: m.clone(),
            colour: style::method_colour(&fig.methods, m),
            swatch: Swatch::Line,
        })
        .collect()
}

/// A linear f64 axis whose ticks (and vertical grid lines) are exactly the given sweep values.
/// (plotters' `with_key_points` on an f64 range loses its label formatter.)
struct SweepAxis {
    inner: plotters::coord::types::RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for SweepAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

pub(super) fn size(fig: &Figure, panels: &[CurvePanel]) -> (u32, u32) {
    let (rows, cols) = style::grid(panels.len(), MAX_COLS);
    let w = cols as u32 * PANEL_W;
    (
        w,
        TITLE_H + rows as u32 * PANEL_H + style::legend_height(&legend_items(fig, panels), w),
    )
}

pub(super) fn draw<DB: DrawingBackend>(
    fig: &Figure,
    metric: &str,
    x_desc: &str,
    panels: &[CurvePanel],
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let items = legend_items(fig, panels);
    let (w, _) = root.dim_in_pixel();
    let body = style::title(root, &fig.title, TITLE_H)?;
    let (_, h) = body.dim_in_pixel();
    let (grid_area, legend_area) = body.split_vertically(h - style::legend_height(&items, w));

    let points = || {
        panels
            .iter()
            .flat_map(|p| p.series.iter().flat_map(|(_, pts)| pts.iter()))
    };
    let (x0, x1) = extent(points().map(|p| p.multiplier)).unwrap_or((-1.0, 1.0));
    let (y0, y1) = extent(
        points()
            .flat_map(|p| [Some(p.mean), p.ci_low, p.ci_high])
            .flatten(),
    )
    .unwrap_or((0.0, 1.0));
    let (x0, x1) = padded_range(x0, x1, 0.04);
    let (y0, y1) = padded_range(y0, y1, 0.08);
    // x ticks exactly at the swept multipliers of this figure, labelled as the sweep meant
    // them (the multipliers were snapped in `figures`, so 0 is 0).
    let ticks = sweep_ticks(points().map(|p| p.multiplier), MAX_X_TICKS);
    let tick_labels: Vec<(f64, String)> =
        ticks.iter().copied().zip(f::sweep_values(&ticks)).collect();
    let x_label = |x: &f64| {
        tick_labels.iter().find(|(t, _)| t == x).map_or_else(
            || f::sweep_value(*x, x1.abs().max(x0.abs())),
            |(_, l)| l.clone(),
        )
    };

    let (rows, cols) = style::grid(panels.len(), MAX_COLS);
    let areas = grid_area.split_evenly((rows, cols));
    for (panel, area) in panels.iter().zip(&areas) {
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title.clone(), font(style::PANEL_TITLE_SIZE))
            .margin(10)
            .margin_right(22)
            .x_label_area_size(50)
            .y_label_area_size(72)
            .build_cartesian_2d(
                SweepAxis {
                    inner: (x0..x1).into(),
                    ticks: ticks.clone(),
                },
                y0..y1,
            )?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(metric)
            .label_style(font(style::LABEL_SIZE))
            .axis_desc_style(font(style::AXIS_DESC_SIZE))
            .x_labels(ticks.len().max(1))
            .y_labels(6)
            .x_label_formatter(&x_label)
            .y_label_formatter(&|y| f::axis_value(*y, y0, y1))
            .max_light_lines(1)
            .light_line_style(RGBColor(245, 245, 245))
            .bold_line_style(RGBColor(220, 220, 220))
            .draw()?;
        let guide = RGBColor(150, 150, 150).stroke_width(1);
        if y0 < 0.0 && y1 > 0.0 {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x0, 0.0), (x1, 0.0)],
                guide,
            )))?;
        }
        if x0 < 0.0 && x1 > 0.0 {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(0.0, y0), (0.0, y1)],
                guide,
            )))?;
        }
        // Bands first so no band hides another method's line.
        for (method, pts) in &panel.series {
            let colour = style::method_colour(&fig.methods, method);
            let band: Option<Vec<(f64, f64, f64)>> = pts
                .iter()
                .map(|p| Some((p.multiplier, p.ci_low?, p.ci_high?)))
                .collect();
            if let Some(band) = band.filter(|b| b.len() > 1) {
                let outline: Vec<(f64, f64)> = band
                    .iter()
                    .map(|b| (b.0, b.2))
                    .chain(band.iter().rev().map(|b| (b.0, b.1)))
                    .collect();
                chart.draw_series(std::iter::once(Polygon::new(
                    outline,
                    colour.mix(0.18).filled(),
                )))?;
            }
        }
        for (method, pts) in &panel.series {
            let colour = style::method_colour(&fig.methods, method);
            let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.multiplier, p.mean)).collect();
            chart.draw_series(LineSeries::new(xy.clone(), colour.stroke_width(3)))?;
            chart.draw_series(xy.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
        }
    }
    style::legend(&legend_area, &items)
}
