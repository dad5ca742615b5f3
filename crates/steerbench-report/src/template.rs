//! The minijinja environment: the embedded default template (or a user's), and the
//! number formatters registered as filters.

use std::path::Path;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};

use crate::error::{ReportError, Result};
use crate::format as f;

/// The default template, shipped inside the binary.
pub const DEFAULT_TEMPLATE: &str = include_str!("../templates/report.md.j2");
const DEFAULT_NAME: &str = "report.md.j2";

fn number(v: &Value) -> std::result::Result<Option<f64>, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(None);
    }
    f64::try_from(v.clone()).map(Some).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("expected a number, got {v}"),
        )
    })
}

fn attr(v: &Value, name: &str) -> std::result::Result<Option<f64>, Error> {
    number(&v.get_attr(name)?)
}

fn sig_filter(v: Value, digits: Option<u32>) -> std::result::Result<String, Error> {
    Ok(f::opt_sig(number(&v)?, digits.unwrap_or(3)))
}

/// `{{ est | ci }}` on an Estimate map, or `{{ value | ci(lo, hi) }}`.
fn ci_filter(v: Value, lo: Option<Value>, hi: Option<Value>) -> std::result::Result<String, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(f::MISSING.into());
    }
    let (value, lo, hi) = if v.get_attr("value").is_ok_and(|x| !x.is_undefined()) {
        (
            attr(&v, "value")?,
            attr(&v, "ci_low")?,
            attr(&v, "ci_high")?,
        )
    } else {
        (
            number(&v)?,
            lo.as_ref().map(number).transpose()?.flatten(),
            hi.as_ref().map(number).transpose()?.flatten(),
        )
    };
    Ok(value.map_or_else(|| f::MISSING.into(), |x| f::ci(x, lo, hi, 3)))
}

fn pm_filter(v: Value, spread: Value, digits: Option<u32>) -> std::result::Result<String, Error> {
    Ok(f::opt_pm(
        number(&v)?,
        number(&spread)?,
        digits.unwrap_or(3),
    ))
}

fn pct_filter(v: Value, decimals: Option<u32>) -> std::result::Result<String, Error> {
    Ok(f::opt_pct(number(&v)?, decimals.unwrap_or(1)))
}

fn mult_filter(v: Value) -> std::result::Result<String, Error> {
    Ok(number(&v)?.map_or_else(|| f::MISSING.into(), f::multiplier))
}

fn compact_filter(v: Value) -> std::result::Result<String, Error> {
    Ok(number(&v)?.map_or_else(|| f::MISSING.into(), f::compact))
}

fn duration_filter(v: Value) -> std::result::Result<String, Error> {
    Ok(number(&v)?.map_or_else(|| f::MISSING.into(), f::duration))
}

/// Free text made safe for one markdown table cell / line.
fn oneline_filter(s: String) -> String {
    s.trim()
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// An environment with the filters and the report template loaded under a known name;
/// returns the name to render. A user template may `{% include %}` files beside it.
pub fn environment(template: Option<&Path>) -> Result<(Environment<'static>, String)> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.add_filter("sig", sig_filter);
    env.add_filter("ci", ci_filter);
    env.add_filter("pm", pm_filter);
    env.add_filter("pct", pct_filter);
    env.add_filter("mult", mult_filter);
    env.add_filter("compact", compact_filter);
    env.add_filter("duration", duration_filter);
    env.add_filter("oneline", oneline_filter);
    match template {
        None => {
            env.add_template(DEFAULT_NAME, DEFAULT_TEMPLATE)?;
            Ok((env, DEFAULT_NAME.to_string()))
        }
        Some(path) => {
            let source =
                std::fs::read_to_string(path).map_err(|source| ReportError::TemplateRead {
                    path: path.to_path_buf(),
                    source,
                })?;
            let name = path
                .file_name()
                .map_or_else(|| "template".into(), |n| n.to_string_lossy().into_owned());
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                env.set_loader(minijinja::path_loader(dir));
            }
            env.add_template_owned(name.clone(), source)?;
            Ok((env, name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(src: &str, ctx: Value) -> String {
        let (mut env, _) = environment(None).unwrap();
        env.add_template_owned("t", src.to_string()).unwrap();
        env.get_template("t").unwrap().render(ctx).unwrap()
    }

    #[test]
    fn filters_format_numbers() {
        let ctx = context! { x => 0.123456, e => context!{ value => 0.123, ci_low => 0.101, ci_high => 0.145 }, n => Value::from(()) };
        assert_eq!(
            render("{{ x | sig }} {{ x | sig(2) }} {{ n | sig }}", ctx.clone()),
            "0.123 0.12 —"
        );
        assert_eq!(
            render("{{ e | ci }}|{{ 0.5 | ci(0.4, 0.6) }}", ctx.clone()),
            "0.123 [0.101, 0.145]|0.50 [0.40, 0.60]"
        );
        assert_eq!(
            render(
                "{{ 0.4234 | pm(0.1311) }} {{ 0.25 | pct }} {{ 2 | mult }} {{ 245 | duration }}",
                ctx
            ),
            "0.42 ± 0.13 25.0% ×2 4 min 05 s"
        );
    }

    #[test]
    fn non_number_is_a_template_error() {
        let (mut env, _) = environment(None).unwrap();
        env.add_template("t", "{{ 'abc' | sig }}").unwrap();
        assert!(env.get_template("t").unwrap().render(()).is_err());
    }

    #[test]
    fn missing_user_template_is_a_clear_error() {
        let err = environment(Some(Path::new("/nonexistent/report.md.j2"))).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/report.md.j2"),
            "{err}"
        );
    }
}
