//! Figures: planning (which figures a `ReportData` yields, pure) and drawing (plotters,
//! generic over the backend so the SVG and the PNG come from the same code).

mod curves;
mod geometry;
mod heatmap;
mod pareto;
mod slopes;
mod style;

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::data::{CurvePoint, HeatCell, ParetoPoint, ReportData};
use crate::error::{ReportError, Result};
use crate::format as f;

pub use geometry::{histogram, pareto_front, Histogram};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlotKind {
    /// Metric vs multiplier per method with CI bands, one panel per layer.
    Curves,
    /// Layer × multiplier heat map, one panel per method, shared colour bar.
    Heatmap,
    /// Histogram of per-input steerability slopes, one panel per method.
    Slopes,
    /// Effect vs degradation across methods and settings, Pareto front highlighted.
    Pareto,
}

/// One figure, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File stem under plots/.
    pub name: String,
    pub kind: PlotKind,
    pub title: String,
    pub caption: String,
    pub(crate) body: Body,
    /// Every method in the report, in a fixed order, so a method keeps its colour across figures.
    pub(crate) methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    Curves {
        metric: String,
        /// What the x axis is (`multiplier`, `turn`).
        x_desc: String,
        panels: Vec<CurvePanel>,
    },
    Heatmap {
        metric: String,
        panels: Vec<HeatPanel>,
    },
    Slopes {
        panels: Vec<SlopePanel>,
    },
    Pareto {
        effect_label: String,
        degradation_label: String,
        points: Vec<ParetoPoint>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CurvePanel {
    /// `layer 3`, `all layers`, a turn scope.
    pub title: String,
    /// (method, points sorted by multiplier)
    pub series: Vec<(String, Vec<CurvePoint>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeatPanel {
    pub method: String,
    pub layers: Vec<usize>,
    pub multipliers: Vec<f64>,
    /// values[layer_index][multiplier_index]
    pub values: Vec<Vec<Option<f64>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlopePanel {
    pub method: String,
    pub layer: Option<usize>,
    pub slopes: Vec<f64>,
}

/// File-name-safe slug: lowercase ASCII alphanumerics and `_`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// Keys in order of first appearance.
fn groups<T, K: PartialEq + Clone>(items: &[T], key: impl Fn(&T) -> K) -> Vec<(K, Vec<&T>)> {
    let mut out: Vec<(K, Vec<&T>)> = Vec::new();
    for it in items {
        let k = key(it);
        match out.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(it),
            None => out.push((k, vec![it])),
        }
    }
    out
}

/// All methods: the setup's order first, then any others as they appear.
fn method_order(data: &ReportData) -> Vec<String> {
    let mut out = data.setup.methods.clone();
    let seen = data
        .main
        .iter()
        .map(|r| &r.method)
        .chain(data.curves.iter().map(|c| &c.method))
        .chain(data.heatmap.iter().map(|c| &c.method))
        .chain(data.slopes.iter().map(|s| &s.method))
        .chain(data.pareto.points.iter().map(|p| &p.method))
        .chain(data.turns.iter().map(|t| &t.method));
    for m in seen {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

fn rank(methods: &[String], m: &str) -> usize {
    methods.iter().position(|x| x == m).unwrap_or(usize::MAX)
}

fn sorted_unique_f64(mut v: Vec<f64>) -> Vec<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| a == b);
    v
}

/// The figures `data` yields, in report order, with unique file names.
pub fn figures(data: &ReportData) -> Vec<Figure> {
    let methods = method_order(data);
    let mut figs = Vec::new();
    let fig = |name: String, kind, title: String, caption: String, body| Figure {
        name,
        kind,
        title,
        caption,
        body,
        methods: methods.clone(),
    };

    for ((dataset, metric), curves) in
        groups(&data.curves, |c| (c.dataset.clone(), c.metric.clone()))
    {
        // Multipliers as the sweep meant them (no -2.78e-17 for 0): ticks sit on them.
        let scale = f::sweep_scale(
            curves
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.multiplier)),
        );
        let mut layers: Vec<Option<usize>> = curves.iter().map(|c| c.layer).collect();
        // Per-layer panels in order, the all-layer panel last.
        layers.sort_unstable_by_key(|l| l.map_or(usize::MAX, |x| x));
        layers.dedup();
        let panels = layers
            .iter()
            .map(|&layer| {
                let mut series: Vec<(String, Vec<CurvePoint>)> = curves
                    .iter()
                    .filter(|c| c.layer == layer)
                    .map(|c| {
                        let mut pts: Vec<CurvePoint> = c
                            .points
                            .iter()
                            .copied()
                            .filter(|p| p.multiplier.is_finite() && p.mean.is_finite())
                            .map(|p| CurvePoint {
                                multiplier: f::snap(p.multiplier, scale),
                                ..p
                            })
                            .collect();
                        pts.sort_by(|a, b| a.multiplier.total_cmp(&b.multiplier));
                        (c.method.clone(), pts)
                    })
                    .filter(|(_, p)| !p.is_empty())
                    .collect();
                series.sort_by_key(|(m, _)| rank(&methods, m));
                CurvePanel {
                    title: layer.map_or_else(|| "all layers".to_string(), |l| format!("layer {l}")),
                    series,
                }
            })
            .filter(|p| !p.series.is_empty())
            .collect::<Vec<_>>();
        if panels.is_empty() {
            continue;
        }
        figs.push(fig(
            format!("curves_{}_{}", slug(&dataset), slug(&metric)),
            PlotKind::Curves,
            format!("{dataset}: {metric} vs multiplier"),
            format!(
                "Mean `{metric}` on `{dataset}` against the steering multiplier, one panel per layer; shaded bands are 95% CIs."
            ),
            Body::Curves {
                metric: metric.clone(),
                x_desc: "multiplier".into(),
                panels,
            },
        ));
    }

    // Fine-tuning baselines: loss against optimizer step, one panel per method.
    let mut training_panels = Vec::new();
    for (method, rows) in groups(&data.training, |t| t.method.clone()) {
        let series = ["train", "val"]
            .iter()
            .map(|split| {
                let pts: Vec<CurvePoint> = rows
                    .iter()
                    .filter(|r| r.split == *split && r.loss.is_finite())
                    .map(|r| CurvePoint {
                        multiplier: r.step as f64,
                        mean: r.loss,
                        ci_low: None,
                        ci_high: None,
                    })
                    .collect();
                (format!("{split} loss"), pts)
            })
            .filter(|(_, p)| !p.is_empty())
            .collect::<Vec<_>>();
        if !series.is_empty() {
            training_panels.push(CurvePanel {
                title: method,
                series,
            });
        }
    }
    if !training_panels.is_empty() {
        figs.push(Figure {
            // Colours by series (train, val), not by method.
            methods: vec!["train loss".into(), "val loss".into()],
            ..fig(
                "training_loss".into(),
                PlotKind::Curves,
                "Fine-tuning baselines: loss vs optimizer step".into(),
                "Training loss at every optimizer step and validation loss before training (step 0) and after every epoch, one panel per fine-tuning baseline.".into(),
                Body::Curves {
                    metric: "loss".into(),
                    x_desc: "optimizer step".into(),
                    panels: training_panels,
                },
            )
        });
    }

    for ((dataset, turn_metric), points) in
        groups(&data.turns, |t| (t.dataset.clone(), t.metric.clone()))
    {
        let whats: &[&str] = if turn_metric == "propensity" {
            &["effect", "persistence"]
        } else {
            &["effect"]
        };
        for &what in whats {
            let metric = format!("{turn_metric} {what}");
            let panels: Vec<CurvePanel> = groups(&points, |t| t.scope.clone())
                .into_iter()
                .map(|(scope, pts)| {
                    let mut series: Vec<(String, Vec<CurvePoint>)> =
                        groups(&pts, |t| t.method.clone())
                            .into_iter()
                            .map(|(method, ts)| {
                                let pts = ts
                                    .iter()
                                    .filter_map(|t| {
                                        let e = if what == "effect" {
                                            Some(&t.effect)
                                        } else {
                                            t.persistence.as_ref()
                                        }?;
                                        e.value.is_finite().then_some(CurvePoint {
                                            multiplier: t.turn as f64,
                                            mean: e.value,
                                            ci_low: e.ci_low,
                                            ci_high: e.ci_high,
                                        })
                                    })
                                    .collect();
                                (method, pts)
                            })
                            .filter(|(_, p): &(String, Vec<CurvePoint>)| !p.is_empty())
                            .collect();
                    series.sort_by_key(|(m, _)| rank(&methods, m));
                    let title = if scope == "none" {
                        "prompting baselines".to_string()
                    } else {
                        scope
                    };
                    CurvePanel { title, series }
                })
                .filter(|p| !p.series.is_empty())
                .collect();
            if panels.is_empty() {
                continue;
            }
            figs.push(fig(
                format!("turns_{}_{}_{what}", slug(&dataset), slug(&turn_metric)),
                PlotKind::Curves,
                format!("{dataset}: {metric} per turn"),
                format!(
                    "Conversations on `{dataset}`: {} at each assistant turn, one panel per turn scope, each method at its setting chosen on validation; shaded bands are 95% CIs over conversations.",
                    if what == "effect" { format!("mean (condition − unsteered) `{turn_metric}`") } else { "the effect relative to the first turn".to_string() }
                ),
                Body::Curves {
                    metric,
                    x_desc: "turn".into(),
                    panels,
                },
            ));
        }
    }

    for ((dataset, metric), cells) in
        groups(&data.heatmap, |c| (c.dataset.clone(), c.metric.clone()))
    {
        let scale = f::sweep_scale(cells.iter().map(|c| c.multiplier));
        let snapped = |c: &HeatCell| f::snap(c.multiplier, scale);
        let mut panels = Vec::new();
        for (method, cs) in groups(&cells, |c| c.method.clone()) {
            let mut layers: Vec<usize> = cs.iter().map(|c| c.layer).collect();
            layers.sort_unstable();
            layers.dedup();
            let multipliers = sorted_unique_f64(cs.iter().map(|c| snapped(c)).collect());
            let mut values = vec![vec![None; multipliers.len()]; layers.len()];
            for c in cs.iter().filter(|c| c.value.is_finite()) {
                let li = layers.iter().position(|&l| l == c.layer);
                let m = snapped(c);
                let mi = multipliers.iter().position(|x| *x == m);
                if let (Some(li), Some(mi)) = (li, mi) {
                    values[li][mi] = Some(c.value);
                }
            }
            if !multipliers.is_empty() {
                panels.push(HeatPanel {
                    method,
                    layers,
                    multipliers,
                    values,
                });
            }
        }
        panels.sort_by_key(|p| rank(&methods, &p.method));
        if panels.is_empty() {
            continue;
        }
        figs.push(fig(
            format!("heatmap_{}_{}", slug(&dataset), slug(&metric)),
            PlotKind::Heatmap,
            format!("{dataset}: {metric} by layer and multiplier"),
            format!("Mean `{metric}` on `{dataset}` for every layer × multiplier, one panel per method, on a shared colour scale."),
            Body::Heatmap { metric: metric.clone(), panels },
        ));
    }

    for (dataset, sets) in groups(&data.slopes, |s| s.dataset.clone()) {
        let mut panels: Vec<SlopePanel> = sets
            .iter()
            .map(|s| SlopePanel {
                method: s.method.clone(),
                layer: s.layer,
                slopes: s.slopes.iter().copied().filter(|x| x.is_finite()).collect(),
            })
            .filter(|p| !p.slopes.is_empty())
            .collect();
        panels.sort_by_key(|p| (rank(&methods, &p.method), p.layer));
        if panels.is_empty() {
            continue;
        }
        figs.push(fig(
            format!("slopes_{}", slug(&dataset)),
            PlotKind::Slopes,
            format!("{dataset}: per-input steerability"),
            format!(
                "Distribution of per-input steerability slopes on `{dataset}`, one panel per method; inputs left of the dashed line at 0 are anti-steerable."
            ),
            Body::Slopes { panels },
        ));
    }

    for (dataset, pts) in groups(&data.pareto.points, |p| p.dataset.clone()) {
        let scale = f::sweep_scale(pts.iter().map(|p| p.multiplier));
        let points: Vec<ParetoPoint> = pts
            .into_iter()
            .filter(|p| p.effect.is_finite() && p.degradation.is_finite())
            .map(|p| ParetoPoint {
                multiplier: f::snap(p.multiplier, scale),
                ..p.clone()
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        figs.push(fig(
            format!("pareto_{}", slug(&dataset)),
            PlotKind::Pareto,
            format!("{dataset}: effect vs degradation"),
            format!(
                "Every evaluated (method, layer, multiplier) on `{dataset}`: {} against {}; the black line is the Pareto front (no other setting has a larger effect with less degradation).",
                data.pareto.effect_label, data.pareto.degradation_label
            ),
            Body::Pareto {
                effect_label: data.pareto.effect_label.clone(),
                degradation_label: data.pareto.degradation_label.clone(),
                points,
            },
        ));
    }

    // Distinct datasets can share a slug ("a b" / "a_b"): number the later ones.
    let mut seen: Vec<String> = Vec::new();
    for f in &mut figs {
        let base = f.name.clone();
        let mut i = 2;
        while seen.contains(&f.name) {
            f.name = format!("{base}_{i}");
            i += 1;
        }
        seen.push(f.name.clone());
    }
    figs
}

pub(crate) type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw<DB: DrawingBackend>(
    fig: &Figure,
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    match &fig.body {
        Body::Curves {
            metric,
            x_desc,
            panels,
        } => curves::draw(fig, metric, x_desc, panels, &root)?,
        Body::Heatmap { metric, panels } => heatmap::draw(fig, metric, panels, &root)?,
        Body::Slopes { panels } => slopes::draw(fig, panels, &root)?,
        Body::Pareto {
            effect_label,
            degradation_label,
            points,
        } => pareto::draw(fig, effect_label, degradation_label, points, &root)?,
    }
    root.present()?;
    Ok(())
}

impl Figure {
    /// Canvas size in pixels.
    pub fn size(&self) -> (u32, u32) {
        match &self.body {
            Body::Curves { panels, .. } => curves::size(self, panels),
            Body::Heatmap { panels, .. } => heatmap::size(panels),
            Body::Slopes { panels } => slopes::size(panels),
            Body::Pareto { .. } => pareto::size(self),
        }
    }
}

fn plot_err(fig: &Figure) -> impl FnOnce(Box<dyn std::error::Error>) -> ReportError + '_ {
    |e| ReportError::Plot {
        name: fig.name.clone(),
        message: e.to_string(),
    }
}

/// The figure as an SVG document.
pub fn render_svg(fig: &Figure) -> Result<String> {
    style::register_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, fig.size()).into_drawing_area();
        draw(fig, root).map_err(plot_err(fig))?;
    }
    Ok(out)
}

/// The figure as a PNG file at `path`.
pub fn render_png(fig: &Figure, path: &Path) -> Result<()> {
    style::register_font()?;
    let root = BitMapBackend::new(path, fig.size()).into_drawing_area();
    // `present` writes the file; its error (a full disk, a missing folder) names the path.
    draw(fig, root).map_err(|e| ReportError::Plot {
        name: format!("{} ({})", fig.name, path.display()),
        message: e.to_string(),
    })
}

/// Short label of a setting, as used on plots.
pub(crate) fn setting_label(layer: usize, multiplier: f64) -> String {
    format!("L{layer} {}", f::multiplier(multiplier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(slug("Sentiment (A/B) test"), "sentiment_a_b_test");
        assert_eq!(slug("///"), "x");
    }
}
