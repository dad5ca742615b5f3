//! A plain table of strings and its three renderings: aligned markdown, CSV, LaTeX (booktabs).

use crate::error::{ReportError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub align: Vec<Align>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns given as (header, alignment).
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            headers: columns.iter().map(|(h, _)| h.to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// All-left columns, for machine-readable exports.
    pub fn plain(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Appends a row; a row of the wrong width is a bug in the caller, reported as an error.
    pub fn push(&mut self, row: Vec<String>) -> Result<()> {
        if row.len() != self.headers.len() {
            return Err(ReportError::Table(format!(
                "row has {} cells, table has {} columns ({})",
                row.len(),
                self.headers.len(),
                self.headers.join(", ")
            )));
        }
        self.rows.push(row);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// GitHub-flavoured markdown with every column padded to its widest cell.
    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let header: Vec<String> = self.headers.iter().map(|h| cell(h)).collect();
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| cell(c)).collect())
            .collect();
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                body.iter()
                    .map(|r| width(&r[i]))
                    .chain([width(&header[i]), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect();
        let pad = |s: &str, i: usize| {
            let fill = " ".repeat(widths[i] - width(s));
            match self.align[i] {
                Align::Left => format!("{s}{fill}"),
                Align::Right => format!("{fill}{s}"),
            }
        };
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        let mut out = line(header.iter().enumerate().map(|(i, h)| pad(h, i)).collect());
        out += &line(
            widths
                .iter()
                .zip(&self.align)
                .map(|(w, a)| match a {
                    Align::Left => "-".repeat(*w),
                    Align::Right => format!("{}:", "-".repeat(w - 1)),
                })
                .collect(),
        );
        for r in &body {
            out += &line(r.iter().enumerate().map(|(i, c)| pad(c, i)).collect());
        }
        out
    }

    pub fn to_csv(&self) -> Result<String> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.write_record(&self.headers)?;
        for r in &self.rows {
            w.write_record(r)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| ReportError::Table(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| ReportError::Table(e.to_string()))
    }

    /// A booktabs `table` float with caption and label.
    pub fn to_latex(&self, caption: &str, label: &str) -> String {
        let spec: String = self
            .align
            .iter()
            .map(|a| if *a == Align::Left { 'l' } else { 'r' })
            .collect();
        // A row opening with `[` would read as the previous `\\`'s optional argument.
        let row = |cells: &[String]| {
            let line = cells
                .iter()
                .map(|c| latex_escape(c))
                .collect::<Vec<_>>()
                .join(" & ");
            let guard = if line.starts_with('[') { "{}" } else { "" };
            format!("{guard}{line} \\\\\n")
        };
        let mut out = String::new();
        out += "\\begin{table}[t]\n\\centering\n";
        out += &format!(
            "\\caption{{{}}}\n\\label{{tab:{}}}\n",
            latex_escape(caption),
            label
        );
        out += &format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n");
        out += &row(&self.headers);
        out += "\\midrule\n";
        for r in &self.rows {
            out += &row(r);
        }
        out += "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
        out
    }
}

/// Escapes LaTeX specials and maps the report's Unicode symbols to math.
pub fn latex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out += "\\textbackslash{}",
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out += "\\textasciitilde{}",
            '^' => out += "\\textasciicircum{}",
            '±' => out += "$\\pm$",
            '×' => out += "$\\times$",
            '—' | '–' => out += "--",
            '−' => out += "$-$",
            '²' => out += "$^2$",
            '≥' => out += "$\\geq$",
            '≤' => out += "$\\leq$",
            '‖' => out += "$\\|$",
            '†' => out += "\\dag{}",
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&[("Method", Align::Left), ("Effect", Align::Right)]);
        t.push(vec!["caa".into(), "0.123 [0.101, 0.145]".into()])
            .unwrap();
        t.push(vec!["mean_diff|x".into(), "1.5".into()]).unwrap();
        t
    }

    #[test]
    fn markdown_is_padded_and_aligned() {
        let want = "\
| Method       |               Effect |
| ------------ | -------------------: |
| caa          | 0.123 [0.101, 0.145] |
| mean_diff\\|x |                  1.5 |
";
        assert_eq!(sample().to_markdown(), want);
    }

    #[test]
    fn csv_quotes_when_needed() {
        let mut t = Table::plain(&["a", "b"]);
        t.push(vec!["x, y".into(), "1".into()]).unwrap();
        assert_eq!(t.to_csv().unwrap(), "a,b\n\"x, y\",1\n");
    }

    #[test]
    fn latex_uses_booktabs_and_escapes() {
        let mut t = Table::new(&[("Method", Align::Left), ("Anti-steerable", Align::Right)]);
        t.push(vec!["mean_diff".into(), "12.5% ± 1".into()])
            .unwrap();
        let tex = t.to_latex("Main results", "main");
        assert!(tex.contains("\\toprule\nMethod & Anti-steerable \\\\\n\\midrule\n"));
        assert!(tex.contains("mean\\_diff & 12.5\\% $\\pm$ 1 \\\\\n\\bottomrule"));
        assert!(tex.contains("\\begin{tabular}{lr}"));
    }

    #[test]
    fn latex_row_starting_with_bracket_is_guarded() {
        let mut t = Table::plain(&["a"]);
        t.push(vec!["[x]".into()]).unwrap();
        assert!(t.to_latex("c", "l").contains("\\midrule\n{}[x] \\\\\n"));
    }

    #[test]
    fn wrong_row_width_is_an_error() {
        let mut t = Table::plain(&["a", "b"]);
        assert!(t.push(vec!["only one".into()]).is_err());
    }
}
