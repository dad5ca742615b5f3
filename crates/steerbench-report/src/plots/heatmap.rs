//! Layer × multiplier heat map: one panel per method, value labels in the cells, one shared
//! colour bar on the right.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use super::geometry::{extent, nice_ticks};
use super::style::{self, font, ColourScale};
use super::{DrawResult, HeatPanel};
use crate::format as f;
use crate::plots::Figure;

const CELL_W: u32 = 64;
const CELL_H: u32 = 38;
const Y_AREA: u32 = 78;
const X_AREA: u32 = 56;
const CAPTION_H: u32 = 34;
const TITLE_H: u32 = 46;
const BAR_W: u32 = 140;
const MAX_COLS: usize = 3;
/// Cells narrower than this get no value label.
const MIN_LABEL_CELL: u32 = 44;

fn dims(panels: &[HeatPanel]) -> (usize, usize) {
    let nx = panels
        .iter()
        .map(|p| p.multipliers.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let ny = panels
        .iter()
        .map(|p| p.layers.len())
        .max()
        .unwrap_or(1)
        .max(1);
    (nx, ny)
}

fn panel_size(panels: &[HeatPanel]) -> (u32, u32) {
    let (nx, ny) = dims(panels);
    (
        (Y_AREA + 30 + nx as u32 * CELL_W).max(340),
        (CAPTION_H + X_AREA + 24 + ny as u32 * CELL_H).max(260),
    )
}

pub(super) fn size(panels: &[HeatPanel]) -> (u32, u32) {
    let (pw, ph) = panel_size(panels);
    let (rows, cols) = style::grid(panels.len(), MAX_COLS);
    (cols as u32 * pw + BAR_W, TITLE_H + rows as u32 * ph)
}

pub(super) fn draw<DB: DrawingBackend>(
    fig: &Figure,
    metric: &str,
    panels: &[HeatPanel],
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let body = style::title(root, &fig.title, TITLE_H)?;
    let (w, _) = body.dim_in_pixel();
    let (grid_area, bar_area) = body.split_horizontally(w - BAR_W);
    let values = panels
        .iter()
        .flat_map(|p| p.values.iter().flatten().flatten().copied());
    let (lo, hi) = extent(values).unwrap_or((0.0, 1.0));
    let scale = ColourScale::new(lo, hi);

    let (rows, cols) = style::grid(panels.len(), MAX_COLS);
    for (panel, area) in panels.iter().zip(grid_area.split_evenly((rows, cols))) {
        let (nx, ny) = (panel.multipliers.len(), panel.layers.len().max(1));
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.method, font(style::PANEL_TITLE_SIZE))
            .margin(8)
            .margin_right(16)
            .x_label_area_size(X_AREA)
            .y_label_area_size(Y_AREA)
            .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)?;
        // Tick labels are drawn by hand at the cell centres; the mesh only draws the axis titles.
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("multiplier")
            .y_desc("layer")
            .axis_desc_style(font(style::AXIS_DESC_SIZE))
            .draw()?;
        let cell_px =
            (chart.backend_coord(&(1.0, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0).max(0) as u32;
        for (j, row) in panel.values.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                let (x, y) = (i as f64, j as f64);
                let fill = v.map_or(RGBColor(225, 225, 225), |v| scale.colour(v));
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    fill.filled(),
                )))?;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    WHITE.stroke_width(2),
                )))?;
                if let Some(v) = v.filter(|_| cell_px >= MIN_LABEL_CELL) {
                    let fg = style::text_on(fill);
                    let style = font(style::LABEL_SIZE)
                        .color(&fg)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    chart.draw_series(std::iter::once(Text::new(
                        f::sig(v, 2),
                        (x + 0.5, y + 0.5),
                        style,
                    )))?;
                }
            }
        }
        let tick = font(style::LABEL_SIZE);
        // One label per swept multiplier, as the sweep meant it (`0`, `-0.2`, `0.3`).
        let labels = f::sweep_values(&panel.multipliers);
        for (i, label) in labels.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            let (bx, by) = root.get_base_pixel();
            root.draw_text(
                label,
                &tick.pos(Pos::new(HPos::Center, VPos::Top)),
                (px - bx, py - by + 8),
            )?;
        }
        for (j, l) in panel.layers.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, j as f64 + 0.5));
            let (bx, by) = root.get_base_pixel();
            root.draw_text(
                &l.to_string(),
                &tick.pos(Pos::new(HPos::Right, VPos::Center)),
                (px - bx - 8, py - by),
            )?;
        }
    }
    colour_bar(&bar_area, metric, &scale)
}

/// A vertical gradient with nice ticks to its right and the metric name (rotated) beyond.
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    metric: &str,
    scale: &ColourScale,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    const BAR_X: i32 = 14;
    const BAR_PX: i32 = 22;
    let (w, h) = area.dim_in_pixel();
    let (top, bottom) = (CAPTION_H as i32 + 12, h as i32 - X_AREA as i32 - 12);
    if bottom - top < 40 {
        return Ok(());
    }
    let span = scale.hi - scale.lo;
    let to_y = |v: f64| bottom - (((v - scale.lo) / span) * (bottom - top) as f64).round() as i32;
    for y in top..bottom {
        let v = scale.lo + (bottom - y) as f64 / (bottom - top) as f64 * span;
        area.draw(&Rectangle::new(
            [(BAR_X, y), (BAR_X + BAR_PX, y + 1)],
            scale.colour(v).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [(BAR_X, top), (BAR_X + BAR_PX, bottom)],
        BLACK.stroke_width(1),
    ))?;
    let tick = font(style::LABEL_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    for v in nice_ticks(scale.lo, scale.hi, 8) {
        let y = to_y(v);
        area.draw(&PathElement::new(
            vec![(BAR_X + BAR_PX, y), (BAR_X + BAR_PX + 5, y)],
            BLACK.stroke_width(1),
        ))?;
        area.draw_text(
            &f::axis_value(v, scale.lo, scale.hi),
            &tick,
            (BAR_X + BAR_PX + 8, y),
        )?;
    }
    let name = font(style::AXIS_DESC_SIZE)
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw_text(metric, &name, (w as i32 - 22, (top + bottom) / 2))?;
    Ok(())
}
