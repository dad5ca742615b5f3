//! Located spec errors ("diagnostics") and did-you-mean suggestions.

use std::fmt;

use super::yaml::Pos;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path like `stages.acts.extract.layers[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.into()));
        FieldPath(v)
    }
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        FieldPath(v)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One spec error with everything a user needs to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Pos,
    pub path: FieldPath,
    pub message: String,
    pub expected: Option<String>,
    pub help: Option<String>,
    /// The source line (a window of it around the error, when long), for the caret display.
    pub source_line: Option<String>,
    /// 1-based column of the caret within `source_line`.
    pub caret_col: usize,
}

/// Characters of a long source line shown around an error's column.
const LINE_WINDOW: usize = 120;

/// `line`, or a window of it centred on 1-based `col` with `…` where it was cut,
/// and the caret's column within what is returned.
pub fn line_excerpt(line: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= LINE_WINDOW {
        return (line.to_string(), col);
    }
    let at = col.saturating_sub(1).min(chars.len());
    let start = at.saturating_sub(LINE_WINDOW / 2);
    let end = (start + LINE_WINDOW).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    (out, at - start + 1 + usize::from(start > 0))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "  --> {}:{}:{}", self.file, self.pos.line, self.pos.col)?;
        if let Some(line) = &self.source_line {
            let num = self.pos.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {line}")?;
            writeln!(
                f,
                "{pad} | {}^",
                " ".repeat(self.caret_col.saturating_sub(1))
            )?;
        }
        writeln!(f, "   = field: {}", self.path)?;
        if let Some(e) = &self.expected {
            writeln!(f, "   = expected: {e}")?;
        }
        if let Some(h) = &self.help {
            writeln!(f, "   = help: {h}")?;
        }
        Ok(())
    }
}

/// All errors of a spec, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// Errors printed in full; the rest are counted (a spec repeating one mistake
/// thousands of times must not flood the terminal).
pub const MAX_SHOWN: usize = 50;

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.0.iter().take(MAX_SHOWN) {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        if n > MAX_SHOWN {
            writeln!(f, "… and {} more error(s) not shown\n", n - MAX_SHOWN)?;
        }
        write!(
            f,
            "{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            self.0.first().map(|d| d.file.as_str()).unwrap_or("spec")
        )
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to `name`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score =
            strsim::jaro_winkler(name, c).max(strsim::normalized_damerau_levenshtein(name, c));
        if score >= 0.75 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into
/// (message, expected, the bad name, the candidates).
pub fn split_serde_message(msg: &str) -> (String, Option<String>, Option<String>, Vec<String>) {
    // "variant" is serde's word; users wrote a name.
    let msg = msg.replacen("unknown variant", "unknown name", 1);
    let (head, expected) = match msg.split_once(", expected ") {
        Some((h, e)) => (h.to_string(), Some(e.to_string())),
        None => (msg.to_string(), None),
    };
    let bad = if head.starts_with("unknown ") {
        backticked(&head).into_iter().next()
    } else {
        None
    };
    let candidates = expected.as_deref().map(backticked).unwrap_or_default();
    // Rust type names mean nothing to a spec's author.
    let expected = expected.map(|e| match e.as_str() {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number ≥ 0".to_string(),
        "i64" | "i32" => "a whole number".to_string(),
        "f64" | "f32" => "a number".to_string(),
        _ => e,
    });
    (head, expected, bad, candidates)
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos_only() {
        assert_eq!(
            did_you_mean("layrs", ["dataset", "layers"]).as_deref(),
            Some("did you mean `layers`?")
        );
        assert_eq!(did_you_mean("zzz", ["dataset", "layers"]), None);
    }

    #[test]
    fn serde_messages_are_split() {
        let (m, e, bad, c) =
            split_serde_message("unknown variant `cca`, expected one of `caa`, `pca`");
        assert_eq!(m, "unknown name `cca`");
        assert_eq!(e.as_deref(), Some("one of `caa`, `pca`"));
        assert_eq!(bad.as_deref(), Some("cca"));
        assert_eq!(c, vec!["caa", "pca"]);
    }
}
