//! The pipeline spec: YAML wire types, loading and validation.
//!
//! `load` reads a file into a spanned tree, deserializes the top-level fields,
//! each dataset and each stage on its own (so one bad stage does not hide
//! another), then runs the cross-reference checks in `validate`. Every problem
//! becomes a `Diagnostic` with file:line:col, field path, expectation and a
//! did-you-mean where a near name exists.

pub mod choice;
pub mod diag;
pub mod matrix;
pub mod types;
mod validate;
pub use validate::{dataset_refs, stage_refs, DataRef, StageRef, MAX_ABS_MULTIPLIER};
pub mod yaml;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use diag::{Diagnostic, Diagnostics, FieldPath, Seg};
pub use matrix::Matrix;
pub use types::*;
use yaml::{Node, NodeKind, Pos};

/// A dataset after validation: its spec plus the resolved field mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub spec: DatasetSpec,
    /// The field mapping the loader uses: the format's defaults with `spec.fields` applied.
    pub fields: steerbench_data::FieldMap,
}

impl Dataset {
    /// The format stages see: `as` when given, else `format`.
    pub fn format(&self) -> Format {
        self.spec.read_as.unwrap_or(self.spec.format)
    }

    pub fn window_tokens(&self) -> Option<usize> {
        match self.spec.format {
            Format::Text => Some(self.spec.window_tokens.unwrap_or(256)),
            _ => None,
        }
    }

    /// The k-shot template of an icl_task dataset (the default when none is given).
    pub fn icl_template(&self) -> Option<steerbench_data::IclTemplate> {
        match self.spec.format {
            Format::IclTask => Some(self.spec.template.clone().unwrap_or_default()),
            _ => None,
        }
    }
}

/// A named stage of the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub spec: StageSpec,
}

/// A validated pipeline spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The file as given (used in messages).
    pub file: String,
    /// Folder that relative paths in the spec are resolved against.
    pub base_dir: PathBuf,
    /// blake3 of the spec file's bytes (provenance only; fingerprints never use it).
    pub hash: String,
    pub name: String,
    pub seed: u64,
    pub model: String,
    pub prompt_format: PromptFormat,
    /// The dtype the model's weights are held in (`dtype:`, or `--dtype`).
    pub dtype: Dtype,
    pub datasets: Vec<Dataset>,
    pub stages: Vec<Stage>,
    /// The `matrix:` the datasets and stages were expanded over (empty without one):
    /// its axes, and for each expanded entry (`acts[sentiment]`) its template and values.
    pub matrix: Matrix,
    /// Every declared name, including those whose definition had errors
    /// (so a broken stage does not also cause "unknown stage" errors).
    declared_stages: Vec<String>,
    declared_datasets: Vec<String>,
    tree: Node,
    text: String,
}

impl Spec {
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name == name)
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub(crate) fn declares_stage(&self, name: &str) -> bool {
        self.declared_stages.iter().any(|n| n == name)
    }

    pub(crate) fn declares_dataset(&self, name: &str) -> bool {
        self.declared_datasets.iter().any(|n| n == name)
    }

    /// A diagnostic located at `path` (or the nearest existing parent).
    pub fn diagnostic(&self, path: FieldPath, message: impl Into<String>) -> Diagnostic {
        let pos = locate(&self.tree, &path.0);
        make_diag(
            &self.file,
            &self.text,
            pos,
            path,
            message.into(),
            None,
            None,
        )
    }
}

/// Reads and validates a spec file.
pub fn load(path: &Path) -> Result<Spec, Diagnostics> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: file.clone(),
            pos: Pos { line: 1, col: 1 },
            path: FieldPath::root(),
            message: format!("cannot read the spec file: {e}"),
            expected: None,
            help: None,
            source_line: None,
            caret_col: 1,
        }])
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_str(&text, &file, &base)
}

/// Parses and validates spec text; `file` is only used in messages.
/// A path written in a spec: absolute as is, relative to the spec file's folder otherwise.
pub fn resolve_path(base_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

pub fn parse_str(text: &str, file: &str, base_dir: &Path) -> Result<Spec, Diagnostics> {
    // Editors on Windows may start a UTF-8 file with a byte-order mark; it is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.len() > MAX_SPEC_BYTES {
        let d = make_diag(
            file,
            "",
            Pos { line: 1, col: 1 },
            FieldPath::root(),
            format!(
                "the spec is {:.1} MiB; a spec may have at most {} MiB",
                text.len() as f64 / (1 << 20) as f64,
                MAX_SPEC_BYTES >> 20
            ),
            None,
            None,
        );
        return Err(Diagnostics(vec![d]));
    }
    let mut cx = Cx {
        file,
        text,
        diags: Vec::new(),
    };
    let (root, problems) = yaml::parse(text);
    for p in problems {
        cx.push(p.pos, FieldPath::root(), p.message, None, None);
    }
    let Some(mut root) = root else {
        if cx.diags.is_empty() {
            cx.push(
                Pos { line: 1, col: 1 },
                FieldPath::root(),
                "the spec file is empty".into(),
                None,
                None,
            );
        }
        return Err(cx.finish());
    };
    if !matches!(root.kind, NodeKind::Map(_)) {
        cx.push(
            root.pos,
            FieldPath::root(),
            format!("the spec must be a mapping, found {}", root.type_name()),
            None,
            None,
        );
        return Err(cx.finish());
    }

    // `matrix` / `foreach` are expanded on the tree: what follows sees plain entries.
    let expansion = matrix::expand(&mut root);
    for p in expansion.problems {
        cx.push(p.pos, p.path, p.message, p.expected, p.help);
    }
    let broken = |section: matrix::Section| {
        expansion
            .broken
            .iter()
            .filter(move |(s, _)| *s == section)
            .map(|(_, n)| n.clone())
    };

    for (k, _) in root.entries() {
        if !TOP_LEVEL_FIELDS.contains(&k.name.as_str()) {
            cx.push(
                k.pos,
                FieldPath::root().key(&k.name),
                format!("unknown field `{}`", k.name),
                Some(expected_list(TOP_LEVEL_FIELDS)),
                diag::did_you_mean(&k.name, TOP_LEVEL_FIELDS.iter().copied()),
            );
        }
    }

    let top = FieldPath::root();
    let name: Option<String> = cx.required(&root, &top, "name");
    let model: Option<String> = cx.required(&root, &top, "model");
    let seed: u64 = cx.optional(&root, &top, "seed").unwrap_or(0);
    let prompt_format: PromptFormat = cx
        .optional(&root, &top, "prompt_format")
        .unwrap_or_default();
    let dtype: Dtype = cx.optional(&root, &top, "dtype").unwrap_or_default();
    if let Some(n) = &name {
        if let Err(e) = check_name(n) {
            cx.at(
                &root,
                top.key("name"),
                format!("invalid pipeline name `{n}`: {e}"),
            );
        }
    }
    if let Some(m) = &model {
        if m.trim().is_empty() {
            cx.at(
                &root,
                top.key("model"),
                "the model must not be empty".into(),
            );
        }
    }

    let datasets = cx.datasets(&root, &expansion.matrix);
    let stages = cx.stages(&root, &expansion.matrix);

    // Missing name/model are already reported; validate the rest regardless.
    let (name, model) = (name.unwrap_or_default(), model.unwrap_or_default());
    let mut spec = Spec {
        file: file.to_string(),
        base_dir: base_dir.to_path_buf(),
        hash: blake3::hash(text.as_bytes()).to_hex().to_string(),
        name,
        seed,
        model,
        prompt_format,
        dtype,
        datasets,
        stages,
        declared_stages: root
            .get("stages")
            .map(|n| n.entries().iter().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default(),
        declared_datasets: root
            .get("datasets")
            .map(|n| n.entries().iter().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default(),
        matrix: expansion.matrix.clone(),
        tree: root,
        text: text.to_string(),
    };
    spec.declared_stages.extend(broken(matrix::Section::Stages));
    spec.declared_datasets
        .extend(broken(matrix::Section::Datasets));
    let more = validate::check(&spec);
    cx.diags.extend(more);
    if cx.diags.is_empty() {
        spec.text.shrink_to_fit();
        Ok(spec)
    } else {
        Err(cx.finish())
    }
}

/// The largest spec file: the shipped pipelines are a few KiB.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// The longest pipeline, dataset or stage name: well inside the 255 bytes a file name
/// may have, with room for the suffixes the run store adds.
pub const MAX_NAME_LEN: usize = 100;

/// Pipeline, dataset and stage names become folder names.
pub fn check_name(n: &str) -> Result<(), &'static str> {
    if n.is_empty() {
        return Err("names must not be empty");
    }
    if n.starts_with('.') {
        return Err("names must not start with `.`");
    }
    if n.len() > MAX_NAME_LEN {
        return Err("names are at most 100 characters (they become folder names)");
    }
    if !n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err("use ASCII letters, digits, `_`, `-` and `.` only");
    }
    Ok(())
}

fn expected_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!("one of {}", quoted.join(", "))
}

struct Cx<'a> {
    file: &'a str,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    /// The scalar as written at `node`'s position (for messages about its value).
    fn literal(&self, node: &Node) -> Option<String> {
        let line = self.text.lines().nth(node.pos.line.checked_sub(1)?)?;
        let rest: String = line.chars().skip(node.pos.col.checked_sub(1)?).collect();
        let token: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}' | '#'))
            .collect();
        (!token.is_empty()).then_some(token)
    }

    fn push(
        &mut self,
        pos: Pos,
        path: FieldPath,
        message: String,
        expected: Option<String>,
        help: Option<String>,
    ) {
        self.diags.push(make_diag(
            self.file, self.text, pos, path, message, expected, help,
        ));
    }

    fn at(&mut self, root: &Node, path: FieldPath, message: String) {
        let pos = locate(root, &path.0);
        self.push(pos, path, message, None, None);
    }

    fn finish(mut self) -> Diagnostics {
        self.diags.sort_by_key(|d| (d.pos.line, d.pos.col));
        self.diags.dedup();
        Diagnostics(self.diags)
    }

    fn required<T: DeserializeOwned>(
        &mut self,
        map: &Node,
        at: &FieldPath,
        key: &str,
    ) -> Option<T> {
        match map.get(key) {
            Some(node) => self.typed(node, &at.key(key)),
            None => {
                let pos = map.entries().first().map(|(k, _)| k.pos).unwrap_or(map.pos);
                self.push(
                    pos,
                    at.clone(),
                    format!("missing field `{key}`"),
                    None,
                    None,
                );
                None
            }
        }
    }

    fn optional<T: DeserializeOwned>(
        &mut self,
        map: &Node,
        at: &FieldPath,
        key: &str,
    ) -> Option<T> {
        map.get(key).and_then(|node| self.typed(node, &at.key(key)))
    }

    /// Deserializes `node` as `T`; on error, records a diagnostic at the
    /// exact sub-node the error path points to.
    fn typed<T: DeserializeOwned>(&mut self, node: &Node, at: &FieldPath) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(node.to_json()) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut path = at.clone();
                let mut cur = node;
                let mut parent = node;
                for seg in e.path().iter() {
                    use serde_path_to_error::Segment;
                    match seg {
                        Segment::Map { key } => {
                            path = path.key(key);
                            parent = cur;
                            cur = cur.get(key).unwrap_or(cur);
                        }
                        Segment::Seq { index } => {
                            path = path.index(*index);
                            if let NodeKind::Seq(items) = &cur.kind {
                                cur = items.get(*index).unwrap_or(cur);
                            }
                        }
                        Segment::Enum { variant } => {
                            if let Some(n) = cur.get(variant) {
                                path = path.key(variant);
                                cur = n;
                            }
                        }
                        Segment::Unknown => {}
                    }
                }
                let raw = e.inner().to_string();
                let (mut message, mut expected, bad, candidates) = diag::split_serde_message(&raw);
                if let NodeKind::Scalar(yaml::Scalar::Float(f)) = cur.kind {
                    if f.is_finite()
                        && expected
                            .as_deref()
                            .is_some_and(|e| e.starts_with("a whole number"))
                    {
                        message = format!(
                            "`{}` is not a whole number in range",
                            self.literal(cur).unwrap_or_else(|| f.to_string())
                        );
                    }
                    if !f.is_finite() {
                        // `.nan`, `.inf` or a literal beyond f64 (1e309) reach serde as text.
                        message = format!(
                            "`{}` is not a finite number",
                            self.literal(cur).unwrap_or_else(|| f.to_string())
                        );
                        expected = Some("a finite number".into());
                    }
                }
                let mut pos = cur.pos;
                if let Some(bad) = &bad {
                    // Point at the offending key itself, not at its mapping or value.
                    if let Some(k) = cur.key(bad) {
                        pos = k.pos;
                        path = path.key(bad);
                    } else if path.0.last() == Some(&Seg::Key(bad.clone())) {
                        if let Some(k) = parent.key(bad) {
                            pos = k.pos;
                        }
                    }
                }
                let help = bad
                    .as_deref()
                    .and_then(|b| diag::did_you_mean(b, candidates.iter().map(String::as_str)));
                self.push(pos, path, message, expected, help);
                None
            }
        }
    }

    fn datasets(&mut self, root: &Node, matrix: &Matrix) -> Vec<Dataset> {
        let at = FieldPath::root().key("datasets");
        let Some(node) = root.get("datasets") else {
            return Vec::new();
        };
        if !matches!(
            node.kind,
            NodeKind::Map(_) | NodeKind::Scalar(yaml::Scalar::Null)
        ) {
            self.push(
                node.pos,
                at,
                format!(
                    "`datasets` must be a mapping of names to datasets, found {}",
                    node.type_name()
                ),
                None,
                None,
            );
            return Vec::new();
        }
        let mut out = Vec::new();
        for (k, v) in node.entries() {
            let here = at.key(&k.name);
            // An expanded name (`data[sentiment]`) was checked as its template's name.
            let cell = matrix.cell(&k.name, matrix::Section::Datasets).is_some();
            if let Err(e) = if cell { Ok(()) } else { check_name(&k.name) } {
                self.push(
                    k.pos,
                    here.clone(),
                    format!("invalid dataset name `{}`: {e}", k.name),
                    None,
                    None,
                );
                continue;
            }
            if k.name.contains('.') && !cell {
                self.push(
                    k.pos,
                    here.clone(),
                    format!(
                        "invalid dataset name `{}`: `.` separates the split in references",
                        k.name
                    ),
                    None,
                    None,
                );
                continue;
            }
            let Some(spec) = self.typed::<DatasetSpec>(v, &here) else {
                continue;
            };
            if let Some(ds) = self.resolve_dataset(root, &here, k.name.clone(), spec) {
                out.push(ds);
            }
        }
        out
    }

    fn resolve_dataset(
        &mut self,
        root: &Node,
        at: &FieldPath,
        name: String,
        spec: DatasetSpec,
    ) -> Option<Dataset> {
        let mut ok = true;
        let role_names = spec.format.role_names();
        for (role, _) in spec.fields.given() {
            if !spec.format.has_role(role) {
                let path = at.key("fields").key(role);
                let pos = locate(root, &path.0);
                self.push(
                    pos,
                    path,
                    format!(
                        "field role `{role}` does not apply to format `{}`",
                        spec.format
                    ),
                    Some(expected_list(&role_names)),
                    None,
                );
                ok = false;
            }
        }
        for (split, message) in spec.split.problems() {
            let path = match split {
                Some(s) => at.key("split").key(s.name()),
                None => at.key("split"),
            };
            self.at(root, path, message);
            ok = false;
        }
        if spec.limit == Some(0) {
            self.at(root, at.key("limit"), "limit must be at least 1".into());
            ok = false;
        }
        if spec.max_tokens == Some(0) {
            self.at(
                root,
                at.key("max_tokens"),
                "max_tokens must be at least 1".into(),
            );
            ok = false;
        }
        match (spec.format, spec.read_as) {
            (_, None)
            | (Format::ContrastiveAb, Some(Format::OpenEnded | Format::MultipleChoice)) => {}
            (f, Some(to)) if f == to => {}
            (f, Some(to)) => {
                self.at(
                    root,
                    at.key("as"),
                    format!(
                        "`{f}` records cannot be read as `{to}`; `format: contrastive_ab` reads as `open_ended` or `multiple_choice`"
                    ),
                );
                ok = false;
            }
        }
        if let Some(h) = &spec.sha256 {
            if !matches!(spec.source, Source::Url(_)) {
                self.at(
                    root,
                    at.key("sha256"),
                    "sha256 pins a URL source only; local files and built-ins are identified by their content".into(),
                );
                ok = false;
            } else if !steerbench_data::remote::is_sha256_hex(h) {
                self.at(
                    root,
                    at.key("sha256"),
                    format!("`{h}` is not a sha256: 64 hex digits expected"),
                );
                ok = false;
            }
        }
        match (spec.format, spec.window_tokens) {
            (Format::Text, Some(0)) => {
                self.at(
                    root,
                    at.key("window_tokens"),
                    "window_tokens must be at least 1".into(),
                );
                ok = false;
            }
            (Format::Text, _) | (_, None) => {}
            (f, Some(_)) => {
                self.at(
                    root,
                    at.key("window_tokens"),
                    format!("window_tokens applies to format `text` only, not `{f}`"),
                );
                ok = false;
            }
        }
        match (&spec.format, &spec.template) {
            (_, None) => {}
            (Format::IclTask, Some(t)) => {
                if let Err(message) = t.validate() {
                    self.at(root, at.key("template"), message);
                    ok = false;
                }
            }
            (f, Some(_)) => {
                self.at(
                    root,
                    at.key("template"),
                    format!("template applies to format `icl_task` only, not `{f}`"),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        match steerbench_data::FieldMap::new(spec.format, &spec.fields) {
            Ok(fields) => Some(Dataset { name, spec, fields }),
            Err(e) => {
                // Unreachable after the role check above; reported rather than unwrapped.
                self.at(root, at.key("fields"), e.to_string());
                None
            }
        }
    }

    fn stages(&mut self, root: &Node, matrix: &Matrix) -> Vec<Stage> {
        let at = FieldPath::root().key("stages");
        let Some(node) = root.get("stages") else {
            self.push(
                root.pos,
                FieldPath::root(),
                "missing field `stages`".into(),
                None,
                None,
            );
            return Vec::new();
        };
        let NodeKind::Map(entries) = &node.kind else {
            self.push(
                node.pos,
                at,
                format!(
                    "`stages` must be a mapping of names to stages, found {}",
                    node.type_name()
                ),
                None,
                None,
            );
            return Vec::new();
        };
        if entries.is_empty() {
            self.push(
                node.pos,
                at.clone(),
                "`stages` is empty: a pipeline needs at least one stage".into(),
                None,
                None,
            );
        }
        let mut out = Vec::new();
        for (k, v) in entries {
            let here = at.key(&k.name);
            // An expanded name (`acts[sentiment]`) was checked as its template's name.
            let cell = matrix.cell(&k.name, matrix::Section::Stages).is_some();
            if let Err(e) = if cell { Ok(()) } else { check_name(&k.name) } {
                self.push(
                    k.pos,
                    here.clone(),
                    format!("invalid stage name `{}`: {e}", k.name),
                    None,
                    None,
                );
                continue;
            }
            if let NodeKind::Map(m) = &v.kind {
                if m.len() != 1 {
                    let kinds: Vec<&str> = StageKind::ALL.iter().map(|k| k.name()).collect();
                    self.push(
                        v.pos,
                        here.clone(),
                        format!("a stage has exactly one kind, found {} keys", m.len()),
                        Some(expected_list(&kinds)),
                        None,
                    );
                    continue;
                }
            }
            if let Some(spec) = self.typed::<StageSpec>(v, &here) {
                out.push(Stage {
                    name: k.name.clone(),
                    spec,
                });
            }
        }
        out
    }
}

fn make_diag(
    file: &str,
    text: &str,
    pos: Pos,
    path: FieldPath,
    message: String,
    expected: Option<String>,
    help: Option<String>,
) -> Diagnostic {
    let excerpt = text
        .lines()
        .nth(pos.line.saturating_sub(1))
        .map(|l| diag::line_excerpt(l, pos.col));
    Diagnostic {
        file: file.to_string(),
        pos,
        path,
        message,
        expected,
        help,
        caret_col: excerpt.as_ref().map_or(1, |e| e.1),
        source_line: excerpt.map(|e| e.0),
    }
}

/// Position of the deepest node along `path` (a key's own position for the last key).
fn locate(root: &Node, path: &[Seg]) -> Pos {
    let mut cur = root;
    let mut pos = root.pos;
    for seg in path {
        match seg {
            Seg::Key(k) => match (cur.key(k), cur.get(k)) {
                (Some(key), Some(v)) => {
                    pos = match &v.kind {
                        NodeKind::Scalar(_) | NodeKind::Seq(_) => v.pos,
                        NodeKind::Map(_) => key.pos,
                    };
                    cur = v;
                }
                _ => break,
            },
            Seg::Index(i) => match &cur.kind {
                NodeKind::Seq(items) if *i < items.len() => {
                    cur = &items[*i];
                    pos = cur.pos;
                }
                _ => break,
            },
        }
    }
    pos
}
