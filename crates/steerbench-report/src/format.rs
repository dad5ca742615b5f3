//! Human number formatting: significant digits, CIs, `±`, percentages.
//!
//! Pure functions; the same input always gives the same string (the report
//! must be byte-identical across renders). Missing values print as `—`.

use crate::data::Estimate;

/// What a missing value prints as.
pub const MISSING: &str = "—";

/// Largest number of decimals any formatter emits.
const MAX_DECIMALS: i32 = 6;

/// Magnitudes outside [1e-4, 1e6) switch to scientific notation.
const SCI_LOW: f64 = 1e-4;
const SCI_HIGH: f64 = 1e6;

/// Decimal exponent of |x| (floor(log10|x|)); 0 for 0.
fn exponent(x: f64) -> i32 {
    if x == 0.0 {
        0
    } else {
        x.abs().log10().floor() as i32
    }
}

/// Decimals that show `x` with `sig` significant digits, after rounding (so 9.996 → 10.0, not 10.00).
fn decimals_for(x: f64, sig: u32) -> i32 {
    let sig = sig.max(1) as i32;
    let d = (sig - 1 - exponent(x)).max(0);
    let rounded = round_to(x, d);
    (sig - 1 - exponent(rounded)).clamp(0, MAX_DECIMALS)
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (x * p).round() / p
}

/// Fixed-point with `decimals` places, never `-0`.
fn fixed(x: f64, decimals: i32) -> String {
    let s = format!("{:.*}", decimals.max(0) as usize, x);
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

fn non_finite(x: f64) -> Option<String> {
    if x.is_nan() {
        Some("NaN".into())
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf".into() } else { "-inf".into() })
    } else {
        None
    }
}

/// `x` with `sig` significant digits: `0.123`, `12.3`, `1523`, `1.23e-5`.
pub fn sig(x: f64, sig: u32) -> String {
    if let Some(s) = non_finite(x) {
        return s;
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(SCI_LOW..SCI_HIGH).contains(&a) {
        let s = format!("{:.*e}", sig.max(1) as usize - 1, x);
        return s;
    }
    if exponent(x) >= sig as i32 {
        // More integer digits than significant digits: round the integer part.
        let p = 10f64.powi(exponent(x) + 1 - sig as i32);
        return fixed((x / p).round() * p, 0);
    }
    fixed(x, decimals_for(x, sig))
}

/// Decimals for a CI so that its half-width shows two significant digits.
fn ci_decimals(value: f64, lo: f64, hi: f64, sig_digits: u32) -> i32 {
    let half = (hi - lo).abs() / 2.0;
    if half == 0.0 || !half.is_finite() {
        decimals_for(value, sig_digits)
    } else {
        decimals_for(half, 2)
    }
}

/// `0.123 [0.101, 0.145]`: value and bounds share the decimals of the CI's precision.
pub fn ci(value: f64, lo: Option<f64>, hi: Option<f64>, sig_digits: u32) -> String {
    match (lo, hi) {
        (Some(lo), Some(hi)) if [value, lo, hi].iter().all(|v| v.is_finite()) => {
            let m = value.abs().max(lo.abs()).max(hi.abs());
            if m != 0.0 && !(SCI_LOW..SCI_HIGH).contains(&m) {
                return format!(
                    "{} [{}, {}]",
                    sig(value, sig_digits),
                    sig(lo, sig_digits),
                    sig(hi, sig_digits)
                );
            }
            let d = ci_decimals(value, lo, hi, sig_digits);
            format!("{} [{}, {}]", fixed(value, d), fixed(lo, d), fixed(hi, d))
        }
        _ => sig(value, sig_digits),
    }
}

/// An optional estimate as a CI string, `—` when absent.
pub fn estimate(e: Option<&Estimate>, sig_digits: u32) -> String {
    e.map_or_else(
        || MISSING.into(),
        |e| ci(e.value, e.ci_low, e.ci_high, sig_digits),
    )
}

/// `0.42 ± 0.13`: the spread gets two significant digits, the mean the same decimals.
pub fn pm(mean: f64, spread: f64, sig_digits: u32) -> String {
    if !mean.is_finite() || !spread.is_finite() {
        return format!("{} ± {}", sig(mean, sig_digits), sig(spread, 2));
    }
    let m = mean.abs().max(spread.abs());
    if m != 0.0 && !(SCI_LOW..SCI_HIGH).contains(&m) {
        return format!("{} ± {}", sig(mean, sig_digits), sig(spread, 2));
    }
    let d = if spread == 0.0 {
        decimals_for(mean, sig_digits)
    } else {
        decimals_for(spread, 2)
    };
    format!("{} ± {}", fixed(mean, d), fixed(spread.abs(), d))
}

/// A fraction as a percentage: `0.1234` → `12.3%`.
pub fn pct(fraction: f64, decimals: u32) -> String {
    if let Some(s) = non_finite(fraction) {
        return s;
    }
    format!("{}%", fixed(fraction * 100.0, decimals as i32))
}

/// A fraction with CI as percentages: `12.3% [8.0%, 16.1%]`.
pub fn pct_estimate(e: Option<&Estimate>, decimals: u32) -> String {
    match e {
        None => MISSING.into(),
        Some(e) => match (e.ci_low, e.ci_high) {
            (Some(lo), Some(hi)) => {
                format!(
                    "{} [{}, {}]",
                    pct(e.value, decimals),
                    pct(lo, decimals),
                    pct(hi, decimals)
                )
            }
            _ => pct(e.value, decimals),
        },
    }
}

/// Up to 3 significant digits without trailing zeros: `2`, `-1.5`, `0.25` (settings, not measurements).
pub fn compact(x: f64) -> String {
    let s = sig(x, 3);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A difference of fractions in signed percentage points: `0.1` → `+10.0 pp`.
pub fn signed_pp(x: f64) -> String {
    if let Some(s) = non_finite(x) {
        return s;
    }
    let s = fixed(x * 100.0, 1);
    if s.starts_with('-') || s == "0.0" {
        format!("{s} pp")
    } else {
        format!("+{s} pp")
    }
}

/// A multiplier: `×2`, `×-1.5`, `×0.25` (its shortest decimal, see [`sweep_value`]).
pub fn multiplier(m: f64) -> String {
    format!("×{}", sweep_value(m, m))
}

/// Relative size under which a difference counts as floating-point noise in a sweep value.
const NOISE: f64 = 1e-12;

/// The value a sweep setting stands for: 0 when |x| ≤ 1e-12 × `scale` (e.g. `-2.78e-17`
/// from `-1 + 0.2 * 5` on a sweep reaching ±1), else the decimal with the fewest significant
/// digits within 1e-12 relative of `x` (`0.30000000000000004` → `0.3`). `scale` is the
/// largest |value| on the same axis; pass `x` itself when there is no axis.
pub fn snap(x: f64, scale: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let scale = if scale.is_finite() {
        scale.abs().max(x.abs())
    } else {
        x.abs()
    };
    if x.abs() <= NOISE * scale {
        return 0.0;
    }
    for digits in 1..=17usize {
        let y: f64 = match format!("{:.*e}", digits - 1, x).parse() {
            Ok(y) => y,
            Err(_) => break,
        };
        if (y - x).abs() <= NOISE * x.abs() {
            return y;
        }
    }
    x
}

/// A sweep value (multiplier, setting) as a label: the shortest decimal that round-trips
/// after [`snap`], never scientific between 1e-6 and 1e16: `-0.2`, `0`, `0.1`, `2`, `0.001`.
pub fn sweep_value(x: f64, scale: f64) -> String {
    if let Some(s) = non_finite(x) {
        return s;
    }
    let y = snap(x, scale);
    if y == 0.0 {
        return "0".into();
    }
    if (1e-6..1e16).contains(&y.abs()) {
        format!("{y}")
    } else {
        format!("{y:e}")
    }
}

/// Largest finite |x| of an axis' values (0 when none): the `scale` of [`sweep_value`].
pub fn sweep_scale(xs: impl IntoIterator<Item = f64>) -> f64 {
    xs.into_iter()
        .filter(|x| x.is_finite())
        .fold(0.0, |m, x| m.max(x.abs()))
}

/// Labels of the values on one axis, each snapped relative to the largest |value|.
pub fn sweep_values(xs: &[f64]) -> Vec<String> {
    let scale = sweep_scale(xs.iter().copied());
    xs.iter().map(|&x| sweep_value(x, scale)).collect()
}

/// A tick label on a continuous (measurement) axis spanning `lo..hi`: [`compact`], with
/// values within 1e-9 of the span of zero printed as `0` (no `-2.78e-17` from tick arithmetic).
pub fn axis_value(x: f64, lo: f64, hi: f64) -> String {
    let span = (hi - lo).abs();
    if span.is_finite() && x.abs() <= 1e-9 * span {
        "0".into()
    } else {
        compact(x)
    }
}

/// Wall-clock seconds: `0.84 s`, `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return MISSING.into();
    }
    if seconds < 60.0 {
        return format!("{} s", sig(seconds, 3));
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else {
        format!("{m} min {s:02} s")
    }
}

/// Helpers for `Option` scalars.
pub fn opt_sig(x: Option<f64>, sig_digits: u32) -> String {
    x.map_or_else(|| MISSING.into(), |x| sig(x, sig_digits))
}

pub fn opt_pct(x: Option<f64>, decimals: u32) -> String {
    x.map_or_else(|| MISSING.into(), |x| pct(x, decimals))
}

pub fn opt_int(x: Option<usize>) -> String {
    x.map_or_else(|| MISSING.into(), |x| x.to_string())
}

pub fn opt_pm(mean: Option<f64>, spread: Option<f64>, sig_digits: u32) -> String {
    match (mean, spread) {
        (Some(m), Some(s)) => pm(m, s, sig_digits),
        (Some(m), None) => sig(m, sig_digits),
        _ => MISSING.into(),
    }
}

/// A value for machine-readable exports: shortest round-trip decimal, empty when absent.
pub fn raw(x: Option<f64>) -> String {
    x.map_or_else(String::new, |x| {
        if x == 0.0 {
            "0".into()
        } else {
            format!("{x}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        let cases = [
            (0.123456, "0.123"),
            (12.3456, "12.3"),
            (1523.4, "1520"),
            (-0.0012345, "-0.00123"),
            (9.996, "10.0"),
            (0.09996, "0.100"),
            (1.0, "1.00"),
            (0.0, "0"),
            (-0.0, "0"),
            (1.23e-5, "1.23e-5"),
            (2.5e7, "2.50e7"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(sig(x, 3), want, "sig({x}, 3)");
        }
        assert_eq!(sig(-0.0004, 1), "-0.0004");
    }

    #[test]
    fn confidence_intervals() {
        assert_eq!(
            ci(0.123, Some(0.101), Some(0.145), 3),
            "0.123 [0.101, 0.145]"
        );
        assert_eq!(
            ci(0.0012, Some(-0.05), Some(0.06), 3),
            "0.001 [-0.050, 0.060]"
        );
        assert_eq!(
            ci(1523.4, Some(1400.0), Some(1650.0), 3),
            "1523 [1400, 1650]"
        );
        assert_eq!(ci(2.0, Some(2.0), Some(2.0), 3), "2.00 [2.00, 2.00]");
        assert_eq!(ci(0.5, None, None, 3), "0.500");
        assert_eq!(estimate(None, 3), "—");
        assert_eq!(
            estimate(Some(&Estimate::with_ci(-0.0004, -0.0009, 0.0001)), 3),
            "-0.00040 [-0.00090, 0.00010]"
        );
    }

    #[test]
    fn plus_minus_and_percent() {
        assert_eq!(pm(0.4234, 0.1311, 3), "0.42 ± 0.13");
        assert_eq!(pm(12.3, 0.04, 3), "12.300 ± 0.040");
        assert_eq!(pm(-1.5, 0.0, 3), "-1.50 ± 0.00");
        assert_eq!(pct(0.1234, 1), "12.3%");
        assert_eq!(pct(-0.00001, 1), "0.0%");
        assert_eq!(
            pct_estimate(Some(&Estimate::with_ci(0.25, 0.2, 0.3)), 0),
            "25% [20%, 30%]"
        );
        assert_eq!(multiplier(-1.5), "×-1.5");
        assert_eq!(multiplier(2.0), "×2");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(signed_pp(0.1), "+10.0 pp");
        assert_eq!(signed_pp(-0.0001), "0.0 pp");
        assert_eq!(signed_pp(-0.02), "-2.0 pp");
        assert_eq!(compact(10.0), "10");
    }

    #[test]
    fn durations_and_raw() {
        assert_eq!(duration(0.842), "0.842 s");
        assert_eq!(duration(245.0), "4 min 05 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(raw(Some(0.1)), "0.1");
        assert_eq!(raw(Some(-0.0)), "0");
        assert_eq!(raw(None), "");
    }

    #[test]
    fn sweep_values_print_the_decimal_meant() {
        // Float noise around 0 on an axis reaching ±1 or ±2 is 0.
        assert_eq!(sweep_value(-2.7755575615628914e-17, 2.0), "0");
        assert_eq!(sweep_value(5.551115123125783e-17, 1.0), "0");
        assert_eq!(sweep_value(-0.0, 1.0), "0");
        // Sums of decimals print as the decimal.
        assert_eq!(sweep_value(0.1 + 0.2, 2.0), "0.3");
        assert_eq!(sweep_value(0.30000000000000004, 0.30000000000000004), "0.3");
        assert_eq!(sweep_value(-0.2, 2.0), "-0.2");
        assert_eq!(sweep_value(0.1, 2.0), "0.1");
        assert_eq!(sweep_value(2.0, 2.0), "2");
        assert_eq!(sweep_value(1e-3, 1e-3), "0.001");
        assert_eq!(sweep_value(-12.5, 20.0), "-12.5");
        // Exact settings keep every digit (not 3 significant ones).
        assert_eq!(sweep_value(1.0625, 2.0), "1.0625");
        // A value no short decimal meets is shown to 12 significant digits.
        assert_eq!(sweep_value(1.0 / 3.0, 1.0), "0.333333333333");
        // A lone tiny value is not noise of anything.
        assert_eq!(sweep_value(1e-7, 1e-7), "1e-7");
        assert_eq!(sweep_value(f64::NAN, 1.0), "NaN");
        // -1 + 0.2 + 0.2 + 0.2 + 0.2 + 0.2 is -5.55e-17.
        let noisy_zero = (0..5).fold(-1.0f64, |x, _| x + 0.2);
        assert!(noisy_zero != 0.0);
        assert_eq!(
            sweep_values(&[-1.0, -0.8, noisy_zero, 0.1 * 3.0, 1.0]),
            ["-1", "-0.8", "0", "0.3", "1"]
        );
        assert_eq!(snap(0.1 * 3.0, 1.0).to_bits(), 0.3f64.to_bits());
        assert_eq!(multiplier(0.1 * 3.0), "×0.3");
        assert_eq!(axis_value(-2.7755575615628914e-17, -2.0, 2.0), "0");
        assert_eq!(axis_value(0.25, -2.0, 2.0), "0.25");
    }
}
