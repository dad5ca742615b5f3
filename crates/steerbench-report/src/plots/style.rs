//! Shared look: the bundled font, the method palette, colour maps, titles and legends.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::DrawResult;
use crate::error::{ReportError, Result};

/// DejaVu Sans (Bitstream Vera license, see assets/DejaVuSans-LICENSE.txt), so text
/// layout never depends on the fonts of the machine that renders.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The family name plots use; SVG viewers fall back to their own sans-serif.
pub(crate) const FAMILY: &str = "sans-serif";

pub(crate) fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

pub(crate) fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(&BLACK)
}

pub(crate) const TITLE_SIZE: f64 = 22.0;
pub(crate) const PANEL_TITLE_SIZE: f64 = 17.0;
pub(crate) const AXIS_DESC_SIZE: f64 = 15.0;
pub(crate) const LABEL_SIZE: f64 = 13.0;
pub(crate) const LEGEND_SIZE: f64 = 15.0;

/// Okabe–Ito colour-blind-safe palette (black moved last), then Tableau extras.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(68, 1, 84),
];

/// A method's colour: fixed by its rank in the report's method list.
pub(crate) fn method_colour(methods: &[String], method: &str) -> RGBColor {
    let i = methods
        .iter()
        .position(|m| m == method)
        .unwrap_or(methods.len());
    PALETTE[i % PALETTE.len()]
}

/// Red used for anti-steerable histogram bars.
pub(crate) const ANTI: RGBColor = RGBColor(200, 40, 40);

fn lerp(a: RGBColor, b: RGBColor, t: f64) -> RGBColor {
    let m = |x: u8, y: u8| {
        (x as f64 + (y as f64 - x as f64) * t)
            .round()
            .clamp(0.0, 255.0) as u8
    };
    RGBColor(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

fn ramp(stops: &[RGBColor], t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let x = t * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    lerp(stops[i], stops[i + 1], x - i as f64)
}

/// Value → colour for a heat map: diverging (blue–white–red, centred on 0) when the
/// range straddles zero, else sequential (viridis stops).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColourScale {
    pub lo: f64,
    pub hi: f64,
    diverging: bool,
}

const DIVERGING: [RGBColor; 5] = [
    RGBColor(33, 102, 172),
    RGBColor(146, 197, 222),
    RGBColor(247, 247, 247),
    RGBColor(244, 165, 130),
    RGBColor(178, 24, 43),
];
const VIRIDIS: [RGBColor; 6] = [
    RGBColor(68, 1, 84),
    RGBColor(65, 68, 135),
    RGBColor(42, 120, 142),
    RGBColor(34, 168, 132),
    RGBColor(122, 209, 81),
    RGBColor(253, 231, 37),
];

impl ColourScale {
    pub fn new(lo: f64, hi: f64) -> Self {
        if lo < 0.0 && hi > 0.0 {
            let m = lo.abs().max(hi.abs());
            Self {
                lo: -m,
                hi: m,
                diverging: true,
            }
        } else {
            let (lo, hi) = if hi > lo {
                (lo, hi)
            } else {
                super::geometry::padded_range(lo, hi, 0.0)
            };
            Self {
                lo,
                hi,
                diverging: false,
            }
        }
    }
    pub fn colour(&self, v: f64) -> RGBColor {
        let t = (v - self.lo) / (self.hi - self.lo);
        if self.diverging {
            ramp(&DIVERGING, t)
        } else {
            ramp(&VIRIDIS, t)
        }
    }
}

/// Black or white, whichever reads better on `bg`.
pub(crate) fn text_on(bg: RGBColor) -> RGBColor {
    let l = 0.2126 * bg.0 as f64 + 0.7152 * bg.1 as f64 + 0.0722 * bg.2 as f64;
    if l > 140.0 {
        BLACK
    } else {
        WHITE
    }
}

/// Draws the figure title centred in a strip of `height` and returns the rest.
pub(crate) fn title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
    height: u32,
) -> std::result::Result<DrawingArea<DB, Shift>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let (top, rest) = root.split_vertically(height);
    let (w, h) = top.dim_in_pixel();
    top.draw_text(
        text,
        &font(TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Center)),
        (w as i32 / 2, h as i32 / 2),
    )?;
    Ok(rest)
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Swatch {
    Line,
    Dot,
    Bar,
    /// Thick black line (Pareto front).
    Front,
}

pub(crate) struct LegendItem {
    pub label: String,
    pub colour: RGBColor,
    pub swatch: Swatch,
}

const SWATCH_W: i32 = 26;
const ROW_H: u32 = 28;
const ITEM_GAP: i32 = 28;

fn text_width(label: &str) -> i32 {
    // Same ab_glyph metrics plotters uses to lay text out.
    let style = font(LEGEND_SIZE);
    style
        .font
        .box_size(label)
        .map(|(w, _)| w as i32)
        .unwrap_or(label.chars().count() as i32 * 9)
}

/// Rows of items that fit in `width`.
fn legend_rows(items: &[LegendItem], width: i32) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut x = 0;
    for (i, it) in items.iter().enumerate() {
        let w = SWATCH_W + 6 + text_width(&it.label) + ITEM_GAP;
        if x + w > width - 20 && !rows.last().is_some_and(|r| r.is_empty()) {
            rows.push(Vec::new());
            x = 0;
        }
        rows.last_mut().expect("non-empty").push(i);
        x += w;
    }
    rows
}

/// Height a legend of `items` needs at `width` pixels.
pub(crate) fn legend_height(items: &[LegendItem], width: u32) -> u32 {
    if items.is_empty() {
        return 0;
    }
    legend_rows(items, width as i32).len() as u32 * ROW_H + 12
}

/// A horizontal legend, centred, wrapping into rows, in its own strip (never over data).
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (width, _) = area.dim_in_pixel();
    for (r, row) in legend_rows(items, width as i32).iter().enumerate() {
        let total: i32 = row
            .iter()
            .map(|&i| SWATCH_W + 6 + text_width(&items[i].label) + ITEM_GAP)
            .sum::<i32>()
            - ITEM_GAP;
        let mut x = (width as i32 - total) / 2;
        let y = 6 + r as i32 * ROW_H as i32 + ROW_H as i32 / 2;
        for &i in row {
            let it = &items[i];
            let c = it.colour;
            match it.swatch {
                Swatch::Line => {
                    area.draw(&PathElement::new(
                        vec![(x, y), (x + SWATCH_W, y)],
                        c.stroke_width(3),
                    ))?;
                }
                Swatch::Front => {
                    area.draw(&PathElement::new(
                        vec![(x, y), (x + SWATCH_W, y)],
                        BLACK.stroke_width(2),
                    ))?;
                }
                Swatch::Dot => {
                    area.draw(&Circle::new((x + SWATCH_W / 2, y), 5, c.filled()))?;
                }
                Swatch::Bar => {
                    area.draw(&Rectangle::new(
                        [(x + 4, y - 7), (x + SWATCH_W - 4, y + 7)],
                        c.filled(),
                    ))?;
                }
            }
            area.draw_text(
                &it.label,
                &font(LEGEND_SIZE).pos(Pos::new(HPos::Left, VPos::Center)),
                (x + SWATCH_W + 6, y),
            )?;
            x += SWATCH_W + 6 + text_width(&it.label) + ITEM_GAP;
        }
    }
    Ok(())
}

/// Grid shape for `n` panels: at most `max_cols` columns.
pub(crate) fn grid(n: usize, max_cols: usize) -> (usize, usize) {
    let cols = n.clamp(1, max_cols);
    (n.div_ceil(cols).max(1), cols)
}
