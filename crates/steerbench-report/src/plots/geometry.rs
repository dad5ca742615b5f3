//! Pure numeric helpers for the plots: axis ranges, histogram bins, the Pareto front.

/// `[lo, hi]` widened by `frac` of its span on both sides; a degenerate span gets a unit-ish width.
pub(crate) fn padded_range(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (-1.0, 1.0);
    }
    let span = hi - lo;
    if span <= f64::EPSILON * lo.abs().max(hi.abs()).max(1.0) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    (lo - span * frac, hi + span * frac)
}

/// Min and max of finite values, if any.
pub(crate) fn extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// `counts.len() + 1` bin edges, ascending.
    pub edges: Vec<f64>,
    pub counts: Vec<usize>,
}

/// Default number of bins for `n` values: √n, between 6 and 30.
pub(crate) fn bin_count(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).clamp(6, 30)
}

/// Equal-width bins over `[lo, hi]` (about `bins` of them) aligned so that 0 is an edge,
/// so no bar mixes steerable and anti-steerable inputs. Values outside are ignored.
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Histogram {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        padded_range(lo, hi, 0.0)
    };
    let width = (hi - lo) / bins.max(1) as f64;
    let start = (lo / width).floor() * width;
    let n = (((hi - start) / width).ceil() as usize).max(1);
    let edges: Vec<f64> = (0..=n).map(|i| start + i as f64 * width).collect();
    let mut counts = vec![0; n];
    for &v in values
        .iter()
        .filter(|v| v.is_finite() && **v >= start && **v <= edges[n])
    {
        let i = (((v - start) / width).floor() as usize).min(n - 1);
        counts[i] += 1;
    }
    Histogram { edges, counts }
}

/// Indices of the points (degradation, effect) that no other point dominates (less or equal
/// degradation and greater or equal effect, one strictly), sorted by degradation.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    // Ascending degradation; at equal degradation the larger effect first.
    order.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut front = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for i in order {
        if points[i].1 > best {
            front.push(i);
            best = points[i].1;
        }
    }
    front
}

/// "Nice" tick values (1, 2, 2.5, 5 × 10^k steps) covering `[lo, hi]`, about `n` of them.
pub(crate) fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    // Multiply rather than accumulate so ticks are exact multiples (0 stays 0).
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Tick positions at the sweep values themselves: `values` sorted and deduplicated, thinned
/// to at most `max` by keeping every k-th value counted outward from the one nearest 0 (so 0,
/// when swept, always keeps its tick).
pub(crate) fn sweep_ticks(values: impl IntoIterator<Item = f64>, max: usize) -> Vec<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| a == b);
    let max = max.max(2);
    if v.len() <= max {
        return v;
    }
    let stride = v.len().div_ceil(max);
    let anchor = (0..v.len())
        .min_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
        .unwrap_or(0);
    let mut out: Vec<f64> = (0..v.len())
        .filter(|i| i.abs_diff(anchor) % stride == 0)
        .map(|i| v[i])
        .collect();
    // The thinning may keep more than `max` around an off-centre anchor; drop from the far end.
    while out.len() > max {
        let far_left = out.first().map_or(0.0, |x| x.abs());
        let far_right = out.last().map_or(0.0, |x| x.abs());
        if far_left > far_right {
            out.remove(0);
        } else {
            out.pop();
        }
    }
    out
}

/// An axis-aligned box in pixels: (x0, y0, x1, y1).
pub(crate) type PixelBox = (i32, i32, i32, i32);

fn overlaps(a: PixelBox, b: PixelBox) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// A point to label (pixels) and its label's (width, height).
pub(crate) type Anchor = ((i32, i32), (i32, i32));

/// Where a label goes: its top-left corner, and whether it sits far enough from its
/// point to need a leader line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LabelSpot {
    pub at: (i32, i32),
    pub leader: bool,
}

/// Greedy label placement. For each anchor (x, y) with a label of size (w, h), try spots
/// around the point at growing distances (right/left × above/below, then straight
/// above/below/right/left) and take the first that stays inside `bounds` and overlaps no
/// placed label, no anchor marker and no `obstacle` (other points); if none is free of
/// obstacles, the obstacles are dropped. None where nothing fits at all.
pub(crate) fn place_labels(
    anchors: &[Anchor],
    obstacles: &[PixelBox],
    bounds: PixelBox,
    marker: i32,
) -> Vec<Option<LabelSpot>> {
    let markers: Vec<PixelBox> = anchors
        .iter()
        .map(|((x, y), _)| (x - marker, y - marker, x + marker, y + marker))
        .collect();
    let mut placed: Vec<PixelBox> = Vec::new();
    let mut out = Vec::with_capacity(anchors.len());
    for &((x, y), (w, h)) in anchors {
        let mut candidates = Vec::new();
        for (ring, extra) in [0, 18, 40, 70].into_iter().enumerate() {
            let g = marker + 2 + extra;
            candidates.extend(
                [
                    (x + g, y - g - h),
                    (x + g, y + g),
                    (x - g - w, y - g - h),
                    (x - g - w, y + g),
                    (x - w / 2, y - g - h),
                    (x - w / 2, y + g),
                    (x + g, y - h / 2),
                    (x - g - w, y - h / 2),
                ]
                .map(|c| (c, ring > 0)),
            );
        }
        let fits = |(cx, cy): (i32, i32), avoid: &[PixelBox]| {
            let b = (cx, cy, cx + w, cy + h);
            b.0 >= bounds.0
                && b.1 >= bounds.1
                && b.2 <= bounds.2
                && b.3 <= bounds.3
                && !placed
                    .iter()
                    .chain(&markers)
                    .chain(avoid)
                    .any(|p| overlaps(*p, b))
        };
        let spot = candidates
            .iter()
            .find(|(c, _)| fits(*c, obstacles))
            .or_else(|| candidates.iter().find(|(c, _)| fits(*c, &[])))
            .map(|&(at, leader)| LabelSpot { at, leader });
        if let Some(s) = spot {
            placed.push((s.at.0, s.at.1, s.at.0 + w, s.at.1 + h));
        }
        out.push(spot);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(-2.4, 2.4, 6), vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
        let t = nice_ticks(0.0, 0.23, 5);
        let want = [0.0, 0.05, 0.1, 0.15, 0.2];
        assert_eq!(t.len(), want.len());
        assert!(
            t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{t:?}"
        );
        assert_eq!(nice_ticks(1.0, 1.0, 5), vec![1.0]);
    }

    #[test]
    fn labels_never_overlap() {
        // Two anchors almost on top of each other, labels 60×14.
        let anchors = [
            ((100, 100), (60, 14)),
            ((102, 98), (60, 14)),
            ((104, 101), (60, 14)),
        ];
        let spots = place_labels(&anchors, &[(150, 60, 250, 140)], (0, 0, 400, 400), 8);
        let boxes: Vec<PixelBox> = spots
            .iter()
            .zip(&anchors)
            .map(|(s, (_, (w, h)))| {
                let (x, y) = s.unwrap().at;
                (x, y, x + w, y + h)
            })
            .collect();
        for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                assert!(
                    !overlaps(boxes[i], boxes[j]),
                    "{:?} {:?}",
                    boxes[i],
                    boxes[j]
                );
            }
        }
        for b in &boxes {
            assert!(
                !overlaps(*b, (150, 60, 250, 140)),
                "label over an obstacle: {b:?}"
            );
        }
        // Nothing fits in a box smaller than the label.
        assert_eq!(
            place_labels(&[((5, 5), (60, 14))], &[], (0, 0, 20, 20), 2),
            vec![None]
        );
    }

    #[test]
    fn front_keeps_only_non_dominated_points() {
        let pts = [
            (0.0, 0.0),
            (1.0, 2.0),
            (1.0, 1.0),
            (2.0, 1.5),
            (3.0, 3.0),
            (0.5, -1.0),
        ];
        assert_eq!(pareto_front(&pts), vec![0, 1, 4]);
        assert!(pareto_front(&[]).is_empty());
    }

    #[test]
    fn histogram_has_an_edge_at_zero_and_counts_everything() {
        let v = [-0.9, -0.1, 0.05, 0.2, 0.2, 0.95];
        let h = histogram(&v, -1.0, 1.0, 4);
        assert!(h.edges.iter().any(|e| e.abs() < 1e-12), "{:?}", h.edges);
        assert_eq!(h.counts.iter().sum::<usize>(), v.len());
        assert_eq!(h.edges.len(), h.counts.len() + 1);
        let h = histogram(&v, -0.9, 0.95, 5);
        assert!(h.edges.iter().any(|e| e.abs() < 1e-12), "{:?}", h.edges);
        assert_eq!(h.counts.iter().sum::<usize>(), v.len());
    }

    #[test]
    fn sweep_ticks_sit_on_the_sweep_values() {
        let sweep = [2.0, -0.2, 0.0, 0.1, -0.2, 1.0];
        assert_eq!(sweep_ticks(sweep, 10), vec![-0.2, 0.0, 0.1, 1.0, 2.0]);
        // 21 values from -2 to 2: every other one, 0 kept.
        let wide: Vec<f64> = (-10..=10).map(|k| k as f64 * 0.2).collect();
        let t = sweep_ticks(wide.clone(), 11);
        assert_eq!(t.len(), 11);
        assert!(t.contains(&0.0));
        assert!(t.iter().all(|x| wide.contains(x)));
        let t = sweep_ticks(wide.clone(), 5);
        assert!(t.len() <= 5 && t.contains(&0.0), "{t:?}");
        // Off-centre anchor.
        let t = sweep_ticks((0..=20).map(f64::from), 4);
        assert!(t.len() <= 4 && t[0] == 0.0, "{t:?}");
        assert!(sweep_ticks([f64::NAN], 4).is_empty());
    }

    #[test]
    fn degenerate_ranges_are_widened() {
        assert_eq!(padded_range(0.0, 0.0, 0.05), (-1.0, 1.0));
        let (lo, hi) = padded_range(2.0, 2.0, 0.05);
        assert!(lo < 2.0 && hi > 2.0);
        assert_eq!(extent([f64::NAN, 3.0, -1.0]), Some((-1.0, 3.0)));
    }
}
