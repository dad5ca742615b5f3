//! Effect vs degradation across every (method, layer, multiplier): points per method, the
//! Pareto front (least degradation for the effect) as a black step line with its settings labelled.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::geometry::{extent, padded_range, pareto_front, place_labels};
use super::style::{self, font, LegendItem, Swatch};
use super::{setting_label, DrawResult, Figure};
use crate::data::ParetoPoint;
use crate::format as f;

const W: u32 = 900;
const PLOT_H: u32 = 560;
const TITLE_H: u32 = 46;
/// Front points get their setting written beside them only while they are this few.
const MAX_FRONT_LABELS: usize = 10;

fn legend_items(fig: &Figure) -> Vec<LegendItem> {
    let mut items: Vec<LegendItem> = fig
        .methods
        .iter()
        .filter(|m| match &fig.body {
            super::Body::Pareto { points, .. } => points.iter().any(|p| &p.method == *m),
            _ => false,
        })
        .map(|m| LegendItem {
            label: m.clone(),
            colour: style::method_colour(&fig.methods, m),
            swatch: Swatch::Dot,
        })
        .collect();
    items.push(LegendItem {
        label: "Pareto front".into(),
        colour: BLACK,
        swatch: Swatch::Front,
    });
    items
}

pub(super) fn size(fig: &Figure) -> (u32, u32) {
    (
        W,
        TITLE_H + PLOT_H + style::legend_height(&legend_items(fig), W),
    )
}

pub(super) fn draw<DB: DrawingBackend>(
    fig: &Figure,
    effect_label: &str,
    degradation_label: &str,
    points: &[ParetoPoint],
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let items = legend_items(fig);
    let body = style::title(root, &fig.title, TITLE_H)?;
    let (plot_area, legend_area) = body.split_vertically(PLOT_H);

    let (x0, x1) = extent(points.iter().map(|p| p.degradation)).unwrap_or((0.0, 1.0));
    let (y0, y1) = extent(points.iter().map(|p| p.effect)).unwrap_or((0.0, 1.0));
    // Extra room on the right for the front's labels.
    let (x0, x1) = padded_range(x0, x1, 0.06);
    let x1 = x1 + (x1 - x0) * 0.08;
    let (y0, y1) = padded_range(y0, y1, 0.08);

    let mut chart = ChartBuilder::on(&plot_area)
        .margin(12)
        .margin_right(28)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(format!("{degradation_label}  (less is better)"))
        .y_desc(format!("{effect_label}  (more is better)"))
        .label_style(font(style::LABEL_SIZE))
        .axis_desc_style(font(style::AXIS_DESC_SIZE))
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|x| f::axis_value(*x, x0, x1))
        .y_label_formatter(&|y| f::axis_value(*y, y0, y1))
        .max_light_lines(1)
        .light_line_style(RGBColor(245, 245, 245))
        .bold_line_style(RGBColor(220, 220, 220))
        .draw()?;
    if y0 < 0.0 && y1 > 0.0 {
        let guide = RGBColor(150, 150, 150).stroke_width(1);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x0, 0.0), (x1, 0.0)],
            guide,
        )))?;
    }

    let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.degradation, p.effect)).collect();
    let front = pareto_front(&xy);
    // A step line: from each front point, right at its effect, then up to the next.
    let mut steps = Vec::new();
    for (k, &i) in front.iter().enumerate() {
        steps.push(xy[i]);
        if let Some(&next) = front.get(k + 1) {
            steps.push((xy[next].0, xy[i].1));
        }
    }
    if steps.len() > 1 {
        chart.draw_series(LineSeries::new(steps, BLACK.stroke_width(2)))?;
    }
    for (p, &(x, y)) in points.iter().zip(&xy) {
        let colour = style::method_colour(&fig.methods, &p.method);
        chart.draw_series(std::iter::once(Circle::new(
            (x, y),
            5,
            colour.mix(0.8).filled(),
        )))?;
    }
    for &i in &front {
        chart.draw_series(std::iter::once(Circle::new(
            xy[i],
            8,
            BLACK.stroke_width(2),
        )))?;
    }
    if front.len() <= MAX_FRONT_LABELS {
        let style = font(style::LABEL_SIZE).pos(Pos::new(HPos::Left, VPos::Top));
        let (bx, by) = root.get_base_pixel();
        let labels: Vec<String> = front
            .iter()
            .map(|&i| {
                format!(
                    "{} {}",
                    points[i].method,
                    setting_label(points[i].layer, points[i].multiplier)
                )
            })
            .collect();
        let mut anchors = Vec::new();
        for (&i, label) in front.iter().zip(&labels) {
            let (px, py) = chart.backend_coord(&xy[i]);
            let (w, h) = style
                .font
                .box_size(label)
                .map(|(w, h)| (w as i32, h as i32))
                .unwrap_or((80, 14));
            anchors.push(((px - bx, py - by), (w, h + 2)));
        }
        let (ax0, ax1) = chart.plotting_area().get_pixel_range();
        let bounds = (ax0.start - bx, ax1.start - by, ax0.end - bx, ax1.end - by);
        // Every other point is an obstacle, so labels do not cover data.
        let obstacles: Vec<(i32, i32, i32, i32)> = xy
            .iter()
            .enumerate()
            .filter(|(i, _)| !front.contains(i))
            .map(|(_, p)| {
                let (px, py) = chart.backend_coord(p);
                (px - bx - 6, py - by - 6, px - bx + 6, py - by + 6)
            })
            .collect();
        let spots = place_labels(&anchors, &obstacles, bounds, 9);
        for ((spot, label), ((ax, ay), (w, h))) in spots.into_iter().zip(&labels).zip(&anchors) {
            let Some(spot) = spot else { continue };
            if spot.leader {
                // From the point to the nearest point of the label's box.
                let (x, y) = spot.at;
                let end = ((*ax).clamp(x, x + *w), (*ay).clamp(y, y + *h));
                root.draw(&PathElement::new(
                    vec![(*ax, *ay), end],
                    RGBColor(120, 120, 120).stroke_width(1),
                ))?;
            }
            root.draw_text(label, &style, spot.at)?;
        }
    }
    style::legend(&legend_area, &items)
}
