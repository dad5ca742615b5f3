//! Pipeline matrices: a top-level `matrix:` of named axes and `foreach:` on datasets
//! and stages, expanded on the spanned YAML tree before anything is typed.
//!
//! ```yaml
//! matrix: { behaviour: [sentiment, formality] }
//! datasets:
//!   data: { foreach: behaviour, source: "../datasets/{behaviour}_ab.jsonl", format: contrastive_ab }
//! stages:
//!   acts: { foreach: behaviour, extract: { dataset: data.train } }
//!   report: { report: { inputs: [acts] } }
//! ```
//!
//! becomes the datasets `data[sentiment]`, `data[formality]` and the stages
//! `acts[sentiment]` (reading `data[sentiment].train`), `acts[formality]` and `report`
//! (reading both). Everything after [`expand`] (typing, validation, planning,
//! fingerprints, the run store) sees ordinary entries. The copies keep the template's
//! positions, so a diagnostic inside a cell points at the template's line and column
//! while its field path names the cell (`stages.acts[formality].extract.dataset`).
//!
//! References are rewritten only in the fields that [`stage_refs`] and [`dataset_refs`]
//! enumerate (read from the typed stage, so no string is guessed to be a name).

use std::collections::{HashMap, HashSet};

use super::diag::{did_you_mean, FieldPath, Seg};
use super::types::StageSpec;
use super::validate::{dataset_refs, stage_refs};
use super::yaml::{self, Key, Node, NodeKind, Pos, Scalar};
use super::Stage;

/// The most datasets and stages a matrix may expand to (cells of every entry together).
pub const MAX_CELLS: usize = 10_000;

/// The most YAML nodes the expanded entries may hold together (a large template times
/// many cells); the file itself is capped at [`yaml::MAX_NODES`].
pub const MAX_EXPANDED_NODES: usize = 1_000_000;

/// The longest expanded name (`acts[sentiment,layer_12]`): still a folder name, with
/// room for the run store's `.tmp-<name>-<fingerprint>` inside 255 bytes.
pub const MAX_CELL_NAME_LEN: usize = 200;

/// Axis names that would clash with the `{input}` / `{output}` placeholders of
/// `icl_task` templates.
pub const RESERVED_AXES: &[&str] = &["input", "output"];

/// The key that expands an entry over matrix axes.
pub const FOREACH: &str = "foreach";

/// The matrix a spec was expanded over (empty when the spec has none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matrix {
    /// The axes in the order they are written.
    pub axes: Vec<Axis>,
    /// Every expanded dataset and stage, datasets first, each entry's cells in matrix order.
    pub cells: Vec<Cell>,
}

/// One axis: a name and its values, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    pub name: String,
    pub values: Vec<String>,
}

/// Whether an entry is a dataset or a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    Datasets,
    Stages,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Datasets => "datasets",
            Section::Stages => "stages",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Section::Datasets => "dataset",
            Section::Stages => "stage",
        }
    }
}

/// One expanded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Its name in the expanded spec: `acts[sentiment]`, `acts[sentiment,12]`.
    pub name: String,
    /// The entry it was expanded from: `acts`.
    pub template: String,
    pub section: Section,
    /// (axis, value) for each axis of the entry's `foreach`, in matrix order.
    pub values: Vec<(String, String)>,
}

impl Matrix {
    pub fn is_empty(&self) -> bool {
        self.axes.is_empty()
    }

    /// The expanded entry called `name`, if it is one.
    pub fn cell(&self, name: &str, section: Section) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.section == section && c.name == name)
    }

    /// The cells of `template`, in matrix order.
    pub fn cells_of<'a>(
        &'a self,
        template: &'a str,
        section: Section,
    ) -> impl Iterator<Item = &'a Cell> + 'a {
        self.cells
            .iter()
            .filter(move |c| c.section == section && c.template == template)
    }
}

/// The name of the cell of `template` with these values (in matrix order).
pub fn cell_name(template: &str, values: &[&str]) -> String {
    format!("{template}[{}]", values.join(","))
}

/// A problem found while expanding, located in the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub pos: Pos,
    pub path: FieldPath,
    pub message: String,
    pub expected: Option<String>,
    pub help: Option<String>,
}

/// What [`expand`] did to the tree.
#[derive(Debug, Default)]
pub(crate) struct Expansion {
    pub matrix: Matrix,
    pub problems: Vec<Problem>,
    /// Entries with a `foreach` that could not be expanded (removed from the tree), and
    /// the entries that were: names the file declares, so a reference to one that could
    /// not be resolved is reported once (here), not again as "unknown".
    pub broken: Vec<(Section, String)>,
}

struct AxisDecl {
    name: String,
    values: Vec<String>,
}

/// An entry with a valid `foreach`.
struct Template {
    /// Indices into the axes, in matrix order.
    axes: Vec<usize>,
}

struct Cx {
    problems: Vec<Problem>,
    /// Cell names written in references that name no cell (reported here, declared so
    /// that validation does not report them again as unknown).
    bad_cells: Vec<(Section, String)>,
}

impl Cx {
    fn err(&mut self, pos: Pos, path: FieldPath, message: String) {
        self.problems.push(Problem {
            pos,
            path,
            message,
            expected: None,
            help: None,
        });
    }
}

/// Expands `matrix` / `foreach` in a spec's root mapping in place.
pub(crate) fn expand(root: &mut Node) -> Expansion {
    let mut cx = Cx {
        problems: Vec::new(),
        bad_cells: Vec::new(),
    };
    let axes = read_matrix(root, &mut cx);
    let mut out = Expansion::default();

    // Entries with `foreach`, checked; the key is removed from every entry here so that
    // what follows (and the typed loader) sees plain datasets and stages.
    let mut templates: HashMap<(Section, String), Template> = HashMap::new();
    let matrix_ok = axes.as_ref().is_some_and(|a| a.1);
    // Axes some `foreach` names (a broken one included: its errors are enough).
    let mut mentioned: HashSet<usize> = HashSet::new();
    for section in [Section::Datasets, Section::Stages] {
        let Some(NodeKind::Map(entries)) = get_mut(root, section.key()).map(|n| &mut n.kind) else {
            continue;
        };
        for (key, value) in entries.iter_mut() {
            let Some((fkey, fnode)) = take_key(value, FOREACH) else {
                continue;
            };
            let path = FieldPath::root()
                .key(section.key())
                .key(&key.name)
                .key(FOREACH);
            let Some((decls, _)) = &axes else {
                cx.err(
                    fkey.pos,
                    path,
                    "`foreach` expands an entry over the axes of a top-level `matrix`, and this spec has none".into(),
                );
                continue;
            };
            if !matrix_ok {
                continue; // the matrix's own errors are reported; the entry stays as written
            }
            if !name_ok(section, &key.name) {
                continue; // reported as an invalid name by the loader
            }
            let (ax, ok) = read_foreach(&fnode, decls, &path, &mut cx);
            mentioned.extend(ax.iter().copied());
            match ok.then_some(ax) {
                Some(ax) => {
                    templates.insert((section, key.name.clone()), Template { axes: ax });
                }
                None => out.broken.push((section, key.name.clone())),
            }
        }
    }
    let Some((decls, true)) = axes else {
        out.problems = cx.problems;
        return out;
    };
    // Broken entries leave the tree: expanding them would only repeat their errors.
    for (section, name) in &out.broken {
        if let Some(NodeKind::Map(entries)) = get_mut(root, section.key()).map(|n| &mut n.kind) {
            entries.retain(|(k, _)| &k.name != name);
        }
    }

    let matrix_pos = root.key("matrix").map(|k| k.pos).unwrap_or(root.pos);
    let matrix_node_pos = root.get("matrix").map(|n| n.pos).unwrap_or(root.pos);
    // Every axis must expand something.
    for (i, a) in decls.iter().enumerate() {
        if !mentioned.contains(&i) {
            let pos = root
                .get("matrix")
                .and_then(|m| m.key(&a.name))
                .map(|k| k.pos)
                .unwrap_or(matrix_node_pos);
            cx.err(
                pos,
                FieldPath::root().key("matrix").key(&a.name),
                format!(
                    "matrix axis `{}` expands no dataset or stage: add `foreach: {}` to the entries it should expand, or remove it",
                    a.name, a.name
                ),
            );
        }
    }

    // Size limits, checked before any copy is made.
    let sizes: Vec<usize> = decls.iter().map(|a| a.values.len()).collect();
    let cells_of = |t: &Template| {
        t.axes
            .iter()
            .fold(1usize, |n, &a| n.saturating_mul(sizes[a]))
    };
    let mut n_cells = 0usize;
    let mut n_nodes = 0usize;
    for ((section, name), t) in &templates {
        let c = cells_of(t);
        n_cells = n_cells.saturating_add(c);
        let size = root
            .get(section.key())
            .and_then(|s| s.get(name))
            .map(yaml::size)
            .unwrap_or(1);
        n_nodes = n_nodes.saturating_add(c.saturating_mul(size));
    }
    if n_cells > MAX_CELLS || n_nodes > MAX_EXPANDED_NODES {
        let message = if n_cells > MAX_CELLS {
            let n = if n_cells == usize::MAX {
                "more than 10^19".to_string()
            } else {
                n_cells.to_string()
            };
            format!(
                "the matrix expands to {n} datasets and stages; at most {MAX_CELLS} are allowed"
            )
        } else {
            format!("the matrix expands to {n_nodes} YAML nodes; at most {MAX_EXPANDED_NODES} are allowed (smaller entries or fewer values)")
        };
        cx.err(matrix_pos, FieldPath::root().key("matrix"), message);
        out.problems = cx.problems;
        for (section, name) in templates.into_keys() {
            if let Some(NodeKind::Map(entries)) = get_mut(root, section.key()).map(|n| &mut n.kind)
            {
                entries.retain(|(k, _)| k.name != name);
            }
            out.broken.push((section, name));
        }
        return out;
    }

    // Placeholders: `{axis}` of the entry's own axes is substituted; another name in
    // braces is an error in an expanded entry (except the icl_task template's own
    // `{input}` / `{output}`), and a matrix axis is an error in an entry without `foreach`.
    // An entry with such an error leaves the tree (declared): its copies would only add
    // errors about names like `{behavior}.train`.
    for section in [Section::Datasets, Section::Stages] {
        let Some(node) = root.get(section.key()) else {
            continue;
        };
        let mut bad = Vec::new();
        for (key, value) in node.entries() {
            let at = FieldPath::root().key(section.key()).key(&key.name);
            let own = templates.get(&(section, key.name.clone()));
            let before = cx.problems.len();
            check_placeholders(value, &at, own, &decls, &mut cx);
            if cx.problems.len() > before {
                bad.push(key.name.clone());
            }
        }
        if let Some(NodeKind::Map(entries)) = get_mut(root, section.key()).map(|n| &mut n.kind) {
            entries.retain(|(k, _)| !bad.contains(&k.name));
        }
        for name in bad {
            templates.remove(&(section, name.clone()));
            out.broken.push((section, name));
        }
    }

    // The longest expanded name of each entry (its longest value on each axis).
    let mut long = Vec::new();
    for ((section, name), t) in &templates {
        let longest: Vec<&str> = t
            .axes
            .iter()
            .map(|&a| {
                decls[a]
                    .values
                    .iter()
                    .max_by_key(|v| v.len())
                    .map_or("", String::as_str)
            })
            .collect();
        let n = cell_name(name, &longest);
        if n.len() > MAX_CELL_NAME_LEN {
            let pos = root
                .get(section.key())
                .and_then(|s| s.key(name))
                .map_or(root.pos, |k| k.pos);
            cx.err(
                pos,
                FieldPath::root().key(section.key()).key(name),
                format!(
                    "expanded name `{n}` is {} characters; expanded names are at most {MAX_CELL_NAME_LEN} (they become folder names)",
                    n.len()
                ),
            );
            long.push((*section, name.clone()));
        }
    }
    for (section, name) in long {
        templates.remove(&(section, name.clone()));
        if let Some(NodeKind::Map(entries)) = get_mut(root, section.key()).map(|n| &mut n.kind) {
            entries.retain(|(k, _)| k.name != name);
        }
        out.broken.push((section, name));
    }

    // Names of the entries as written, to find expanded names that collide with them.
    let declared: HashSet<(Section, String)> = [Section::Datasets, Section::Stages]
        .into_iter()
        .flat_map(|s| {
            root.get(s.key())
                .map(|n| n.entries())
                .unwrap_or_default()
                .iter()
                .map(move |(k, _)| (s, k.name.clone()))
        })
        .collect();

    let mut cells = Vec::new();
    for section in [Section::Datasets, Section::Stages] {
        let Some(node) = get_mut(root, section.key()) else {
            continue;
        };
        let NodeKind::Map(entries) = &mut node.kind else {
            continue;
        };
        let old = std::mem::take(entries);
        let mut new = Vec::with_capacity(old.len());
        for (key, value) in old {
            let Some(t) = templates.get(&(section, key.name.clone())) else {
                let mut value = value;
                if section == Section::Stages {
                    let none = vec![None; decls.len()];
                    resolve_refs(&mut value, &key.name, &none, &templates, &decls, &mut cx);
                }
                new.push((key, value));
                continue;
            };
            for combo in product(&t.axes, &sizes, &vec![None; decls.len()]) {
                let name = name_of(&key.name, &t.axes, &combo, &decls);
                if declared.contains(&(section, name.clone())) {
                    cx.err(
                        key.pos,
                        FieldPath::root().key(section.key()).key(&key.name),
                        format!(
                            "the {} `{name}` expanded from `{}` has the name of a {} declared in the file; rename one",
                            section.noun(),
                            key.name,
                            section.noun()
                        ),
                    );
                    continue;
                }
                let mut assign = vec![None; decls.len()];
                for (&a, &v) in t.axes.iter().zip(&combo) {
                    assign[a] = Some(v);
                }
                let mut copy = value.clone();
                substitute(&mut copy, &t.axes, &assign, &decls);
                if section == Section::Stages {
                    resolve_refs(&mut copy, &name, &assign, &templates, &decls, &mut cx);
                }
                cells.push(Cell {
                    name: name.clone(),
                    template: key.name.clone(),
                    section,
                    values: t
                        .axes
                        .iter()
                        .zip(&combo)
                        .map(|(&a, &v)| (decls[a].name.clone(), decls[a].values[v].clone()))
                        .collect(),
                });
                new.push((Key { name, pos: key.pos }, copy));
            }
        }
        *entries = new;
    }

    out.broken.extend(templates.into_keys());
    out.broken.append(&mut cx.bad_cells);
    out.matrix = Matrix {
        axes: decls
            .into_iter()
            .map(|a| Axis {
                name: a.name,
                values: a.values,
            })
            .collect(),
        cells,
    };
    out.problems = cx.problems;
    out
}

/// Whether the loader accepts `name` for an entry of `section` (its own checks report it).
fn name_ok(section: Section, name: &str) -> bool {
    super::check_name(name).is_ok() && !(section == Section::Datasets && name.contains('.'))
}

/// The `matrix:` axes, and whether they are all valid. None when the spec has no matrix.
fn read_matrix(root: &Node, cx: &mut Cx) -> Option<(Vec<AxisDecl>, bool)> {
    let node = root.get("matrix")?;
    let at = FieldPath::root().key("matrix");
    let NodeKind::Map(entries) = &node.kind else {
        cx.err(
            node.pos,
            at,
            format!(
                "`matrix` must be a mapping of axis names to lists of values, found {}",
                node.type_name()
            ),
        );
        return Some((Vec::new(), false));
    };
    let mut ok = true;
    if entries.is_empty() {
        cx.err(
            node.pos,
            at.clone(),
            "`matrix` is empty: declare at least one axis, e.g. `behaviour: [a, b]`".into(),
        );
        ok = false;
    }
    let mut axes = Vec::new();
    for (k, v) in entries {
        let here = at.key(&k.name);
        if let Err(why) = check_axis_name(&k.name) {
            cx.err(
                k.pos,
                here.clone(),
                format!("invalid axis name `{}`: {why}", k.name),
            );
            ok = false;
        }
        let NodeKind::Seq(items) = &v.kind else {
            cx.err(
                v.pos,
                here,
                format!(
                    "axis `{}` must be a list of values (`[a, b]`), found {}",
                    k.name,
                    v.type_name()
                ),
            );
            ok = false;
            continue;
        };
        if items.is_empty() {
            cx.err(
                v.pos,
                here,
                format!("axis `{}` has no values: list at least one", k.name),
            );
            ok = false;
            continue;
        }
        let mut values: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let text = match &item.kind {
                NodeKind::Scalar(Scalar::Str(s)) => s.clone(),
                NodeKind::Scalar(Scalar::Int(n)) => n.to_string(),
                _ => {
                    cx.err(
                        item.pos,
                        here.index(i),
                        format!(
                            "an axis value is a name (ASCII letters, digits, `_`, `-`), found {}",
                            item.type_name()
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            if let Err(why) = check_value(&text) {
                cx.err(
                    item.pos,
                    here.index(i),
                    format!("invalid value `{text}` of axis `{}`: {why}", k.name),
                );
                ok = false;
                continue;
            }
            if let Some(first) = values.iter().position(|v| *v == text) {
                cx.err(
                    item.pos,
                    here.index(i),
                    format!(
                        "value `{text}` of axis `{}` is listed twice (first at index {first}); list each once",
                        k.name
                    ),
                );
                ok = false;
                continue;
            }
            values.push(text);
        }
        axes.push(AxisDecl {
            name: k.name.clone(),
            values,
        });
    }
    Some((axes, ok))
}

/// Axis names appear in `{axis}` placeholders: identifiers, not `input` or `output`.
fn check_axis_name(n: &str) -> Result<(), String> {
    let mut chars = n.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("axis names are ASCII letters, digits and `_`, not starting with a digit (they are written `{name}` in values)".into());
    }
    if n == FOREACH {
        return Err("`foreach` is the key that names axes".into());
    }
    if RESERVED_AXES.contains(&n) {
        return Err(format!(
            "`{{{n}}}` is a placeholder of icl_task templates; choose another name"
        ));
    }
    if n.len() > 50 {
        return Err("axis names are at most 50 characters".into());
    }
    Ok(())
}

/// Values become part of names (`acts[sentiment]`), folder names and dataset references.
fn check_value(v: &str) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("values must not be empty");
    }
    if v.len() > 100 {
        return Err("values are at most 100 characters");
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err("use ASCII letters, digits, `_` and `-` only (values become parts of names and folder names)");
    }
    Ok(())
}

/// The axes a `foreach` names (an axis or a list of axes), as indices in matrix order,
/// and whether it is valid (every name an axis, each once).
fn read_foreach(node: &Node, axes: &[AxisDecl], at: &FieldPath, cx: &mut Cx) -> (Vec<usize>, bool) {
    let items: Vec<(&Node, FieldPath)> = match &node.kind {
        NodeKind::Scalar(Scalar::Str(_)) => vec![(node, at.clone())],
        NodeKind::Seq(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, n)| (n, at.index(i)))
            .collect(),
        NodeKind::Seq(_) => {
            cx.err(
                node.pos,
                at.clone(),
                "`foreach` is empty: name one or more matrix axes".into(),
            );
            return (Vec::new(), false);
        }
        _ => {
            cx.err(
                node.pos,
                at.clone(),
                format!(
                    "`foreach` takes a matrix axis or a list of axes, found {}",
                    node.type_name()
                ),
            );
            return (Vec::new(), false);
        }
    };
    let names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
    let mut out: Vec<usize> = Vec::new();
    let mut ok = true;
    for (n, path) in items {
        let Some(s) = n.as_str() else {
            cx.err(
                n.pos,
                path,
                format!("an axis name is a string, found {}", n.type_name()),
            );
            ok = false;
            continue;
        };
        match names.iter().position(|a| *a == s) {
            Some(i) if out.contains(&i) => {
                cx.err(
                    n.pos,
                    path,
                    format!("axis `{s}` is listed twice in `foreach`"),
                );
                ok = false;
            }
            Some(i) => out.push(i),
            None => {
                cx.problems.push(Problem {
                    pos: n.pos,
                    path,
                    message: format!("unknown matrix axis `{s}`"),
                    expected: Some(format!(
                        "one of {}",
                        names
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    help: did_you_mean(s, names.iter().copied()),
                });
                ok = false;
            }
        }
    }
    out.sort_unstable();
    (out, ok)
}

/// The names of the `{name}` placeholders in a string (identifier names only).
fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..len];
        if after[len..].starts_with('}')
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            out.push(name);
        }
        rest = after;
    }
    out
}

/// Every string value under `node` (keys excluded), with its path.
fn strings<'a>(node: &'a Node, at: &FieldPath, out: &mut Vec<(&'a Node, FieldPath)>) {
    match &node.kind {
        NodeKind::Scalar(Scalar::Str(_)) => out.push((node, at.clone())),
        NodeKind::Scalar(_) => {}
        NodeKind::Seq(items) => {
            for (i, n) in items.iter().enumerate() {
                strings(n, &at.index(i), out);
            }
        }
        NodeKind::Map(entries) => {
            for (k, v) in entries {
                strings(v, &at.key(&k.name), out);
            }
        }
    }
}

fn check_placeholders(
    entry: &Node,
    at: &FieldPath,
    own: Option<&Template>,
    axes: &[AxisDecl],
    cx: &mut Cx,
) {
    let mut found = Vec::new();
    strings(entry, at, &mut found);
    let axis_names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
    for (node, path) in found {
        let Some(s) = node.as_str() else { continue };
        let mut seen: Vec<&str> = Vec::new();
        for name in placeholders(s) {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let axis = axis_names.iter().position(|a| *a == name);
            match (own, axis) {
                (Some(t), Some(i)) if t.axes.contains(&i) => {}
                (Some(_), Some(_)) => cx.err(
                    node.pos,
                    path.clone(),
                    format!(
                        "`{{{name}}}` names matrix axis `{name}`, which this entry's `foreach` does not list: add it to `foreach`"
                    ),
                ),
                (None, Some(_)) => cx.err(
                    node.pos,
                    path.clone(),
                    format!(
                        "`{{{name}}}` names matrix axis `{name}`, but this entry has no `foreach`: add `foreach: {name}` to expand it"
                    ),
                ),
                (Some(_), None) if RESERVED_AXES.contains(&name) => {}
                (Some(_), None) => cx.problems.push(Problem {
                    pos: node.pos,
                    path: path.clone(),
                    message: format!("`{{{name}}}` is not a matrix axis"),
                    expected: Some(format!(
                        "a placeholder of this entry's axes: {}",
                        own.map(|t| {
                            t.axes
                                .iter()
                                .map(|&i| format!("`{{{}}}`", axes[i].name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default()
                    )),
                    help: did_you_mean(name, axis_names.iter().copied()),
                }),
                (None, None) => {}
            }
        }
    }
}

/// Replaces `{axis}` by the cell's value in every string value under `node`.
fn substitute(node: &mut Node, own: &[usize], assign: &[Option<usize>], axes: &[AxisDecl]) {
    match &mut node.kind {
        NodeKind::Scalar(Scalar::Str(s)) => {
            if !s.contains('{') {
                return;
            }
            for &a in own {
                if let Some(v) = assign[a] {
                    let pat = format!("{{{}}}", axes[a].name);
                    if s.contains(&pat) {
                        *s = s.replace(&pat, &axes[a].values[v]);
                    }
                }
            }
        }
        NodeKind::Scalar(_) => {}
        NodeKind::Seq(items) => {
            for n in items {
                substitute(n, own, assign, axes);
            }
        }
        NodeKind::Map(entries) => {
            for (_, v) in entries {
                substitute(v, own, assign, axes);
            }
        }
    }
}

/// The value-index combinations of `axes` (matrix order, the first axis slowest),
/// keeping the values `fixed` gives.
fn product(axes: &[usize], sizes: &[usize], fixed: &[Option<usize>]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new()];
    for &a in axes {
        let choices: Vec<usize> = match fixed[a] {
            Some(v) => vec![v],
            None => (0..sizes[a]).collect(),
        };
        out = out
            .into_iter()
            .flat_map(|prefix| {
                choices.iter().map(move |&v| {
                    let mut p = prefix.clone();
                    p.push(v);
                    p
                })
            })
            .collect();
    }
    out
}

fn name_of(template: &str, axes: &[usize], combo: &[usize], decls: &[AxisDecl]) -> String {
    let values: Vec<&str> = axes
        .iter()
        .zip(combo)
        .map(|(&a, &v)| decls[a].values[v].as_str())
        .collect();
    cell_name(template, &values)
}

/// One reference to rewrite: the path inside the stage entry and the new name(s).
struct Edit {
    rel: Vec<Seg>,
    names: Vec<String>,
}

/// Rewrites the references of one stage entry (`name` as expanded, `assign` its cell's
/// values, all None outside the matrix) to matrix entries: to the same cell when the
/// target's axes are the cell's, to all matching cells in a list field, else an error.
fn resolve_refs(
    node: &mut Node,
    name: &str,
    assign: &[Option<usize>],
    templates: &HashMap<(Section, String), Template>,
    axes: &[AxisDecl],
    cx: &mut Cx,
) {
    // A stage that does not type is reported by the loader, in every cell.
    let Ok(spec) = serde_json::from_value::<StageSpec>(node.to_json()) else {
        return;
    };
    let stage = Stage {
        name: name.to_string(),
        spec,
    };
    let sizes: Vec<usize> = axes.iter().map(|a| a.values.len()).collect();
    let mut edits = Vec::new();
    let mut wanted: Vec<(FieldPath, Section, String, String)> = Vec::new();
    for r in stage_refs(&stage) {
        wanted.push((r.path, Section::Stages, r.name.to_string(), String::new()));
    }
    for r in dataset_refs(&stage) {
        let suffix =
            r.r.split
                .map(|s| format!(".{}", s.name()))
                .unwrap_or_default();
        wanted.push((r.path, Section::Datasets, r.r.dataset.clone(), suffix));
    }
    for (path, section, target, suffix) in wanted {
        let Some(t) = templates.get(&(section, target.clone())) else {
            check_cell_ref(node, &path, section, &target, templates, axes, cx);
            continue;
        };
        let rel: Vec<Seg> = path.0.iter().skip(2).cloned().collect();
        let in_cell = t.axes.iter().all(|&a| assign[a].is_some());
        let combos = product(&t.axes, &sizes, assign);
        let list = matches!(rel.last(), Some(Seg::Index(_)));
        if in_cell || list {
            let names = combos
                .iter()
                .map(|c| format!("{}{suffix}", name_of(&target, &t.axes, c, axes)))
                .collect();
            edits.push(Edit { rel, names });
            continue;
        }
        let pos = find(node, &rel).map(|n| n.pos).unwrap_or(node.pos);
        let over: Vec<String> = t
            .axes
            .iter()
            .map(|&a| format!("`{}`", axes[a].name))
            .collect();
        let missing: Vec<&str> = t
            .axes
            .iter()
            .filter(|&&a| assign[a].is_none())
            .map(|&a| axes[a].name.as_str())
            .collect();
        let example = combos
            .first()
            .map(|c| format!("{}{suffix}", name_of(&target, &t.axes, c, axes)))
            .unwrap_or_default();
        let noun = section.noun();
        let message = if assign.iter().all(Option::is_none) {
            let foreach = match missing.as_slice() {
                [one] => one.to_string(),
                more => format!("[{}]", more.join(", ")),
            };
            format!(
                "`{target}` is a matrix {noun} (one per {}), and this field outside the matrix takes one {noun}: name a cell, e.g. `{example}`, or add `foreach: {foreach}` to this stage",
                over.join(" × "),
            )
        } else {
            format!(
                "`{target}` is a matrix {noun} (one per {}), and this stage does not expand over {}: name a cell, e.g. `{example}`, or add {} to this stage's `foreach`",
                over.join(" × "),
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            )
        };
        cx.err(pos, path, message);
    }
    // Later list items first, so splicing does not move the ones still to do.
    for e in edits.into_iter().rev() {
        apply(node, &e.rel, e.names);
    }
}

/// A reference written as a cell (`acts[joy,3]`) of an expanded entry must name one of
/// its cells: the right number of values, each a value of its axis.
fn check_cell_ref(
    node: &Node,
    path: &FieldPath,
    section: Section,
    target: &str,
    templates: &HashMap<(Section, String), Template>,
    axes: &[AxisDecl],
    cx: &mut Cx,
) {
    let Some((base, inside)) = target.strip_suffix(']').and_then(|t| t.split_once('[')) else {
        return;
    };
    let Some(t) = templates.get(&(section, base.to_string())) else {
        return;
    };
    let values: Vec<&str> = inside.split(',').collect();
    let axis_list = t
        .axes
        .iter()
        .map(|&a| format!("`{}`", axes[a].name))
        .collect::<Vec<_>>()
        .join(", ");
    let problem = if values.len() != t.axes.len() {
        let shape: Vec<String> = t
            .axes
            .iter()
            .map(|&a| format!("<{}>", axes[a].name))
            .collect();
        Some(format!(
            "`{target}` names no cell: `{base}` is expanded over {axis_list}, so its cells are `{base}[{}]`",
            shape.join(",")
        ))
    } else {
        t.axes.iter().zip(&values).find_map(|(&a, v)| {
            (!axes[a].values.iter().any(|x| x == v)).then(|| {
                let known: Vec<String> =
                    axes[a].values.iter().map(|x| format!("`{x}`")).collect();
                let hint = did_you_mean(v, axes[a].values.iter().map(String::as_str))
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                format!(
                    "`{target}` names no cell: `{v}` is not a value of axis `{}`, whose values are {}{hint}",
                    axes[a].name,
                    known.join(", ")
                )
            })
        })
    };
    if let Some(message) = problem {
        let rel: Vec<Seg> = path.0.iter().skip(2).cloned().collect();
        let pos = find(node, &rel).map(|n| n.pos).unwrap_or(node.pos);
        cx.err(pos, path.clone(), message);
        cx.bad_cells.push((section, target.to_string()));
    }
}

/// The node at `rel` inside a stage entry. Serde aliases are followed (`dataset:` for
/// `datasets:`), and index 0 of a one-value field written without a list is the value.
fn find<'a>(node: &'a Node, rel: &[Seg]) -> Option<&'a Node> {
    let mut cur = node;
    for seg in rel {
        cur = match (seg, &cur.kind) {
            (Seg::Key(k), NodeKind::Map(_)) => cur.get(k).or_else(|| cur.get(alias(k)?))?,
            (Seg::Index(i), NodeKind::Seq(items)) => items.get(*i)?,
            (Seg::Index(0), NodeKind::Scalar(_)) => cur,
            _ => return None,
        };
    }
    Some(cur)
}

fn find_mut<'a>(node: &'a mut Node, rel: &[Seg]) -> Option<&'a mut Node> {
    let Some((seg, rest)) = rel.split_first() else {
        return Some(node);
    };
    if matches!((seg, &node.kind), (Seg::Index(0), NodeKind::Scalar(_))) {
        return find_mut(node, rest);
    }
    let next = match (seg, &mut node.kind) {
        (Seg::Key(k), NodeKind::Map(entries)) => {
            let i = entries
                .iter()
                .position(|(key, _)| key.name == *k)
                .or_else(|| {
                    let a = alias(k)?;
                    entries.iter().position(|(key, _)| key.name == a)
                })?;
            &mut entries[i].1
        }
        (Seg::Index(i), NodeKind::Seq(items)) => items.get_mut(*i)?,
        _ => return None,
    };
    find_mut(next, rest)
}

/// The other spelling serde accepts for a reference field (types.rs `#[serde(alias)]`).
fn alias(key: &str) -> Option<&'static str> {
    match key {
        "datasets" => Some("dataset"),
        _ => None,
    }
}

fn apply(node: &mut Node, rel: &[Seg], names: Vec<String>) {
    let str_node = |s: String, pos: Pos| Node {
        kind: NodeKind::Scalar(Scalar::Str(s)),
        pos,
    };
    if let Some((Seg::Index(i), parent)) = rel.split_last() {
        let Some(list) = find_mut(node, parent) else {
            return;
        };
        match &mut list.kind {
            NodeKind::Seq(items) if *i < items.len() => {
                let pos = items[*i].pos;
                items.splice(*i..=*i, names.into_iter().map(|n| str_node(n, pos)));
            }
            NodeKind::Scalar(_) if *i == 0 => {
                let pos = list.pos;
                list.kind = NodeKind::Seq(names.into_iter().map(|n| str_node(n, pos)).collect());
            }
            _ => {}
        }
        return;
    }
    if let (Some(target), Some(name)) = (find_mut(node, rel), names.into_iter().next()) {
        target.kind = NodeKind::Scalar(Scalar::Str(name));
    }
}

/// Removes `key` from a mapping node, returning the key and its value.
fn take_key(node: &mut Node, key: &str) -> Option<(Key, Node)> {
    let NodeKind::Map(entries) = &mut node.kind else {
        return None;
    };
    let i = entries.iter().position(|(k, _)| k.name == key)?;
    Some(entries.remove(i))
}

fn get_mut<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.kind {
        NodeKind::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::{parse_str, Spec};

    const HEAD: &str = "name: m\nmodel: fake\n";

    fn ok(body: &str) -> Spec {
        parse_str(&format!("{HEAD}{body}"), "p.yaml", Path::new("."))
            .unwrap_or_else(|d| panic!("{d}"))
    }

    fn errors(body: &str) -> String {
        match parse_str(&format!("{HEAD}{body}"), "p.yaml", Path::new(".")) {
            Ok(_) => panic!("spec unexpectedly valid"),
            Err(d) => d.to_string(),
        }
    }

    fn names(spec: &Spec) -> (Vec<&str>, Vec<&str>) {
        (
            spec.datasets.iter().map(|d| d.name.as_str()).collect(),
            spec.stages.iter().map(|s| s.name.as_str()).collect(),
        )
    }

    fn json(spec: &Spec, stage: &str) -> serde_json::Value {
        serde_json::to_value(&spec.stage(stage).unwrap().spec).unwrap()
    }

    const BASIC: &str = r#"matrix:
  behaviour: [sentiment, formality]
datasets:
  data:
    foreach: behaviour
    source: "../datasets/{behaviour}_ab.jsonl"
    format: contrastive_ab
  wiki: { source: builtin:wiki_text, format: text }
stages:
  acts:
    foreach: behaviour
    extract: { dataset: data.train, layers: [1] }
  vectors: { foreach: behaviour, vectors: { activations: acts, methods: [caa] } }
  sweep:
    foreach: behaviour
    evaluate: { vectors: vectors, datasets: [data.test], layers: [1], multipliers: [0, 1], metrics: [propensity] }
  damage: { degradation: { vectors: "vectors[sentiment]", corpus: wiki, metrics: [perplexity], layers: [1], multipliers: [1] } }
  report:
    report: { inputs: [sweep, damage] }
"#;

    #[test]
    fn entries_expand_per_value_and_references_stay_in_their_cell() {
        let spec = ok(BASIC);
        let (ds, st) = names(&spec);
        assert_eq!(ds, ["data[sentiment]", "data[formality]", "wiki"]);
        assert_eq!(
            st,
            [
                "acts[sentiment]",
                "acts[formality]",
                "vectors[sentiment]",
                "vectors[formality]",
                "sweep[sentiment]",
                "sweep[formality]",
                "damage",
                "report"
            ]
        );
        assert_eq!(
            spec.dataset("data[formality]")
                .unwrap()
                .spec
                .source
                .to_string(),
            "../datasets/formality_ab.jsonl"
        );
        assert_eq!(
            json(&spec, "acts[formality]")["extract"]["dataset"],
            "data[formality].train"
        );
        assert_eq!(
            json(&spec, "vectors[sentiment]")["vectors"]["activations"],
            "acts[sentiment]"
        );
        let sweep = json(&spec, "sweep[formality]");
        assert_eq!(sweep["evaluate"]["vectors"], "vectors[formality]");
        assert_eq!(
            sweep["evaluate"]["datasets"],
            serde_json::json!(["data[formality].test"])
        );
        // Outside the matrix, a list field takes every cell, in matrix order.
        assert_eq!(
            json(&spec, "report")["report"]["inputs"],
            serde_json::json!(["sweep[sentiment]", "sweep[formality]", "damage"])
        );
        assert_eq!(spec.matrix.axes[0].name, "behaviour");
        let cell = spec
            .matrix
            .cell("acts[formality]", Section::Stages)
            .unwrap();
        assert_eq!(cell.template, "acts");
        assert_eq!(
            cell.values,
            [("behaviour".to_string(), "formality".to_string())]
        );
        assert_eq!(spec.matrix.cells_of("data", Section::Datasets).count(), 2);
    }

    #[test]
    fn several_axes_give_combined_names_and_partial_cells() {
        let spec = ok(r#"matrix:
  behaviour: [a, b]
  layer: [3, 5]
datasets:
  data: { foreach: behaviour, source: "{behaviour}.jsonl", format: contrastive_ab }
stages:
  acts: { foreach: behaviour, extract: { dataset: data.train, layers: all } }
  vec: { foreach: behaviour, vectors: { activations: acts, methods: [caa] } }
  sweep:
    foreach: [layer, behaviour]
    evaluate: { vectors: vec, dataset: data.test, layers: [1], multipliers: [1], metrics: [propensity] }
  per_behaviour: { foreach: behaviour, report: { inputs: [sweep] } }
"#);
        let (_, st) = names(&spec);
        assert_eq!(
            &st[4..8],
            ["sweep[a,3]", "sweep[a,5]", "sweep[b,3]", "sweep[b,5]"]
        );
        let s = json(&spec, "sweep[b,5]");
        assert_eq!(s["evaluate"]["vectors"], "vec[b]");
        // `dataset:` (one value, the alias of `datasets:`) is rewritten too.
        assert_eq!(
            s["evaluate"]["datasets"],
            serde_json::json!(["data[b].test"])
        );
        // A cell lacking an axis of a list field's target reads the matching cells.
        assert_eq!(
            json(&spec, "per_behaviour[b]")["report"]["inputs"],
            serde_json::json!(["sweep[b,3]", "sweep[b,5]"])
        );
    }

    #[test]
    fn placeholders_are_substituted_only_for_axes_and_icl_templates_keep_theirs() {
        let spec = ok(r#"matrix: { task: [antonyms, en_fr] }
datasets:
  icl:
    foreach: task
    source: "builtin:icl_{task}"
    format: icl_task
    template: { demo: "{task}: {input} -> {output}\n", query: "{task}: {input} ->" }
stages:
  acts: { foreach: task, extract: { dataset: icl.train } }
"#);
        let t = spec.dataset("icl[en_fr]").unwrap().icl_template().unwrap();
        assert_eq!(t.demo, "en_fr: {input} -> {output}\n");
        assert_eq!(t.query, "en_fr: {input} ->");
    }

    #[test]
    fn matrix_errors_are_located() {
        let e = errors(
            r#"matrix:
  input: [a]
  behaviour: [x, x, "a.b", 1.5]
  empty: []
datasets:
  d: { source: a.jsonl, format: contrastive_ab }
stages:
  s: { foreach: behaviour, extract: { dataset: d.train } }
"#,
        );
        assert!(e.contains("invalid axis name `input`"), "{e}");
        assert!(e.contains("p.yaml:4:3"), "{e}");
        assert!(
            e.contains("value `x` of axis `behaviour` is listed twice"),
            "{e}"
        );
        assert!(e.contains("p.yaml:5:18"), "{e}");
        assert!(e.contains("invalid value `a.b`"), "{e}");
        assert!(e.contains("found a number"), "{e}");
        assert!(e.contains("axis `empty` has no values"), "{e}");
        // The matrix is broken: the entry is kept as written, no follow-on errors.
        assert!(!e.contains("exactly one kind"), "{e}");
    }

    #[test]
    fn foreach_errors_are_located() {
        let e = errors(
            r#"datasets:
  d: { foreach: behaviour, source: a.jsonl, format: contrastive_ab }
stages:
  s: { extract: { dataset: d.train } }
"#,
        );
        assert!(e.contains("this spec has none"), "{e}");
        assert!(e.contains("p.yaml:4:8"), "{e}");
        assert!(e.contains("1 error"), "{e}");
        let e = errors(
            r#"matrix: { behaviour: [a, b], unused: [c] }
datasets:
  d: { foreach: behavior, source: "{behaviour}.jsonl", format: contrastive_ab }
stages:
  s: { foreach: [behaviour, behaviour], extract: { dataset: d.train } }
  t: { foreach: behaviour, extract: { dataset: "{behavior}.train" } }
  u: { extract: { dataset: "{behaviour}.train" } }
"#,
        );
        assert!(e.contains("unknown matrix axis `behavior`"), "{e}");
        assert!(e.contains("did you mean `behaviour`?"), "{e}");
        assert!(
            e.contains("axis `behaviour` is listed twice in `foreach`"),
            "{e}"
        );
        assert!(
            e.contains("matrix axis `unused` expands no dataset or stage"),
            "{e}"
        );
        assert!(e.contains("`{behavior}` is not a matrix axis"), "{e}");
        assert!(e.contains("field: stages.t.extract.dataset"), "{e}");
        assert!(e.contains("this entry has no `foreach`"), "{e}");
        // The broken entries are declared: no "unknown dataset `d`" on top.
        assert!(!e.contains("unknown dataset"), "{e}");
    }

    #[test]
    fn errors_inside_a_cell_name_the_cell_at_the_template_position() {
        let e = errors(
            r#"matrix: { behaviour: [a, b] }
datasets:
  d: { foreach: behaviour, source: "{behaviour}.jsonl", format: contrastive_ab }
stages:
  s: { foreach: behaviour, extract: { dataset: d.train, layers: [1, 1] } }
"#,
        );
        assert!(e.contains("field: stages.s[a].extract.layers[1]"), "{e}");
        assert!(e.contains("field: stages.s[b].extract.layers[1]"), "{e}");
        assert_eq!(e.matches("p.yaml:7:69").count(), 2, "{e}");
    }

    #[test]
    fn a_single_valued_reference_to_a_matrix_entry_from_outside_must_name_a_cell() {
        let e = errors(
            r#"matrix: { behaviour: [a, b], layer: [1, 2] }
datasets:
  d: { foreach: behaviour, source: "{behaviour}.jsonl", format: contrastive_ab }
stages:
  acts: { foreach: [behaviour, layer], extract: { dataset: d.train } }
  vec: { vectors: { activations: acts, methods: [caa] } }
  vec2: { foreach: behaviour, vectors: { activations: acts, methods: [caa] } }
  ok: { vectors: { activations: "acts[a,2]", methods: [caa] } }
"#,
        );
        assert!(
            e.contains("outside the matrix takes one stage: name a cell, e.g. `acts[a,1]`"),
            "{e}"
        );
        assert!(e.contains("field: stages.vec.vectors.activations"), "{e}");
        assert!(e.contains("this stage does not expand over `layer`"), "{e}");
        assert!(
            e.contains("field: stages.vec2[b].vectors.activations"),
            "{e}"
        );
        assert!(!e.contains("stages.ok"), "{e}");
    }

    #[test]
    fn a_written_cell_must_exist() {
        let e = errors(
            r#"matrix: { behaviour: [joy, anger], layer: [1, 2] }
datasets:
  d: { foreach: behaviour, source: "{behaviour}.jsonl", format: contrastive_ab }
stages:
  acts: { foreach: [behaviour, layer], extract: { dataset: d.train } }
  v1: { vectors: { activations: "acts[joy]", methods: [caa] } }
  v2: { vectors: { activations: "acts[jo,1]", methods: [caa] } }
  v3: { vectors: { activations: "acts[joy,1]", methods: [caa] } }
  e: { evaluate: { vectors: v3, datasets: ["d[anger].test", "d[x].val"], layers: [1], multipliers: [1], metrics: [propensity] } }
"#,
        );
        assert!(
            e.contains("`acts[joy]` names no cell: `acts` is expanded over `behaviour`, `layer`, so its cells are `acts[<behaviour>,<layer>]`"),
            "{e}"
        );
        assert!(
            e.contains("`jo` is not a value of axis `behaviour`, whose values are `joy`, `anger` (did you mean `joy`?)"),
            "{e}"
        );
        assert!(e.contains("`d[x]` names no cell"), "{e}");
        assert!(e.contains("field: stages.e.evaluate.datasets[1]"), "{e}");
        assert!(!e.contains("unknown"), "{e}");
        assert!(e.contains("3 errors"), "{e}");
    }

    #[test]
    fn too_many_cells_are_refused_before_any_copy() {
        let values: Vec<String> = (0..101).map(|i| format!("v{i}")).collect();
        let e = errors(&format!(
            "matrix: {{ a: [{v}], b: [{v}] }}\nstages:\n  s: {{ foreach: [a, b], report: {{ inputs: [x] }} }}\n  x: {{ report: {{ inputs: [s] }} }}\n",
            v = values.join(", ")
        ));
        assert!(
            e.contains("the matrix expands to 10201 datasets and stages; at most 10000"),
            "{e}"
        );
        assert!(e.contains("1 error"), "{e}");
    }

    #[test]
    fn a_product_beyond_usize_is_refused_without_overflow() {
        let values: Vec<String> = (0..60).map(|i| format!("v{i}")).collect();
        let axes: Vec<String> = (0..12)
            .map(|i| format!("a{i}: [{}]", values.join(", ")))
            .collect();
        let names: Vec<String> = (0..12).map(|i| format!("a{i}")).collect();
        let e = errors(&format!(
            "matrix: {{ {} }}\nstages:\n  s: {{ foreach: [{}], report: {{ inputs: [x] }} }}\n  x: {{ report: {{ inputs: [s] }} }}\n",
            axes.join(", "),
            names.join(", ")
        ));
        assert!(e.contains("expands to more than 10^19 datasets"), "{e}");
    }

    #[test]
    fn expanded_names_colliding_or_too_long_are_errors() {
        let long = "v".repeat(100);
        let e = errors(&format!(
            "matrix: {{ a: [{long}, short], b: [{long}] }}\nstages:\n  s: {{ foreach: [a, b], report: {{ inputs: [x] }} }}\n  x: {{ report: {{ inputs: [s] }} }}\n"
        ));
        assert!(e.contains("expanded names are at most 200"), "{e}");
        // The entry is not expanded; `x`'s reference to it is not reported again.
        assert!(e.contains("1 error"), "{e}");
        let e = errors(
            "matrix: { a: [b] }\nstages:\n  s: { foreach: a, report: { inputs: [x] } }\n  s[b]: { report: { inputs: [x] } }\n  x: { report: { inputs: [s] } }\n",
        );
        assert!(
            e.contains(
                "the stage `s[b]` expanded from `s` has the name of a stage declared in the file"
            ),
            "{e}"
        );
        assert!(e.contains("invalid stage name `s[b]`"), "{e}");
    }

    #[test]
    fn spec_without_matrix_is_unchanged() {
        let spec = ok("datasets:\n  d: { source: \"{x}.jsonl\", format: contrastive_ab }\nstages:\n  r: { report: { inputs: [v] } }\n  v: { vectors: { activations: a, methods: [caa] } }\n  a: { extract: { dataset: d.train } }\n");
        assert!(spec.matrix.is_empty());
        assert_eq!(
            spec.dataset("d").unwrap().spec.source.to_string(),
            "{x}.jsonl"
        );
    }
}
