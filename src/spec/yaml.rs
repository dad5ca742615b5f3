//! A YAML tree that remembers where every node came from.
//!
//! serde_yaml_ng stops at the first error, so the spec is parsed into this
//! spanned tree first; each dataset and stage is then deserialized on its own
//! and errors are mapped back to a line and column through their field path.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in the spec file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    /// Integers from `i64::MIN` to `u64::MAX` (a seed may use the whole u64 range).
    Int(i128),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Keys keep their own positions so "unknown field" errors point at the key.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
}

/// A structural problem found while building the tree (bad YAML, duplicate keys).
#[derive(Debug, Clone, PartialEq)]
pub struct YamlProblem {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub fn key(&self, key: &str) -> Option<&Key> {
        self.entries()
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k)
    }

    pub fn entries(&self) -> &[(Key, Node)] {
        match &self.kind {
            NodeKind::Map(m) => m,
            _ => &[],
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(Scalar::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(Scalar::Null) => "null",
            NodeKind::Scalar(Scalar::Bool(_)) => "a boolean",
            NodeKind::Scalar(Scalar::Int(_)) => "an integer",
            NodeKind::Scalar(Scalar::Float(_)) => "a number",
            NodeKind::Scalar(Scalar::Str(_)) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// Plain JSON for serde; non-finite floats become strings so the typed
    /// deserializer rejects them with a located message instead of a panic.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            NodeKind::Scalar(Scalar::Null) => J::Null,
            NodeKind::Scalar(Scalar::Bool(b)) => J::Bool(*b),
            NodeKind::Scalar(Scalar::Int(i)) => match (i64::try_from(*i), u64::try_from(*i)) {
                (Ok(v), _) => J::from(v),
                (_, Ok(v)) => J::from(v),
                _ => J::from(*i as f64),
            },
            NodeKind::Scalar(Scalar::Float(f)) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(f.to_string())),
            NodeKind::Scalar(Scalar::Str(s)) => J::String(s.clone()),
            NodeKind::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    m.insert(k.name.clone(), v.to_json());
                }
                J::Object(m)
            }
        }
    }
}

/// The most nodes a spec may expand to, aliases included: far above any real spec
/// (the shipped pipelines have a few hundred), far below what an alias bomb asks for.
pub const MAX_NODES: usize = 100_000;

/// Parses one YAML document. Returns the root (None for an empty file) and
/// every structural problem found; a syntax error ends parsing. A second document
/// in the file and an expansion beyond [`MAX_NODES`] (an alias bomb) are problems.
pub fn parse(text: &str) -> (Option<Node>, Vec<YamlProblem>) {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        builder.problems.push(YamlProblem {
            pos: (*e.marker()).into(),
            message: format!("invalid YAML: {}", e.info()),
        });
        return (None, builder.problems);
    }
    (builder.root, builder.problems)
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending: Option<Key>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    /// Anchor id → the node and its size in nodes.
    anchors: Vec<(usize, Node, usize)>,
    problems: Vec<YamlProblem>,
    /// Documents started so far; events of a second one are not built.
    documents: usize,
    /// Nodes built so far, aliases counted at their expanded size.
    nodes: usize,
    /// Set once a limit is hit: later events are ignored.
    stopped: bool,
}

/// Nodes in a subtree.
pub(crate) fn size(node: &Node) -> usize {
    1 + match &node.kind {
        NodeKind::Scalar(_) => 0,
        NodeKind::Seq(items) => items.iter().map(size).sum(),
        NodeKind::Map(entries) => entries.iter().map(|(_, v)| size(v)).sum(),
    }
}

impl Builder {
    /// YAML merge keys: `<<: *base` (or `<<: [*a, *b]`) adds the entries of the merged
    /// mappings that the mapping does not set itself; earlier mappings in a list win.
    fn merge_keys(&mut self, entries: Vec<(Key, Node)>) -> Vec<(Key, Node)> {
        if !entries.iter().any(|(k, _)| k.name == "<<") {
            return entries;
        }
        let (merges, mut own): (Vec<_>, Vec<_>) =
            entries.into_iter().partition(|(k, _)| k.name == "<<");
        for (key, value) in merges {
            let sources: Vec<Node> = match value.kind {
                NodeKind::Map(_) => vec![value],
                NodeKind::Seq(items)
                    if items.iter().all(|n| matches!(n.kind, NodeKind::Map(_))) =>
                {
                    items
                }
                _ => {
                    self.problems.push(YamlProblem {
                        pos: key.pos,
                        message: "a merge key `<<` takes a mapping (an alias such as `*defaults`) or a list of mappings".into(),
                    });
                    continue;
                }
            };
            for src in sources {
                if let NodeKind::Map(src_entries) = src.kind {
                    for (k, v) in src_entries {
                        if !own.iter().any(|(o, _)| o.name == k.name) {
                            own.push((k, v));
                        }
                    }
                }
            }
        }
        own
    }

    fn stop(&mut self, pos: Pos, message: String) {
        self.problems.push(YamlProblem { pos, message });
        self.stopped = true;
        self.stack.clear();
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            let n = size(&node);
            self.anchors.push((anchor, node.clone(), n));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, pending, ..
            }) => match pending.take() {
                None => {
                    let name = match &node.kind {
                        NodeKind::Scalar(Scalar::Str(s)) => s.clone(),
                        NodeKind::Scalar(Scalar::Int(i)) => i.to_string(),
                        NodeKind::Scalar(Scalar::Float(f)) => f.to_string(),
                        NodeKind::Scalar(Scalar::Bool(b)) => b.to_string(),
                        NodeKind::Scalar(Scalar::Null) => "null".into(),
                        _ => {
                            self.problems.push(YamlProblem {
                                pos: node.pos,
                                message: "mapping keys must be plain names, not lists or mappings"
                                    .into(),
                            });
                            String::from("<complex key>")
                        }
                    };
                    if entries.iter().any(|(k, _)| k.name == name) {
                        self.problems.push(YamlProblem {
                            pos: node.pos,
                            message: format!("duplicate key `{name}`"),
                        });
                    }
                    *pending = Some(Key {
                        name,
                        pos: node.pos,
                    });
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

fn resolve_plain(s: &str) -> Scalar {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    if let Ok(i) = s.parse::<i128>() {
        if i >= i64::MIN as i128 && i <= u64::MAX as i128 {
            return Scalar::Int(i);
        }
    }
    let looks_numeric = s
        .starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E' | '_'));
    if looks_numeric {
        if let Ok(f) = s.replace('_', "").parse::<f64>() {
            return Scalar::Float(f);
        }
    }
    Scalar::Str(s.to_string())
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos: Pos = mark.into();
        if self.stopped {
            return;
        }
        if matches!(ev, Event::DocumentStart) {
            self.documents += 1;
            if self.documents > 1 {
                self.stop(
                    pos,
                    "a pipeline file holds one YAML document; a second one starts here \
                     (remove the `---` line, or put the second pipeline in its own file)"
                        .into(),
                );
            }
            return;
        }
        if matches!(
            ev,
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..)
        ) {
            self.nodes += 1;
            if self.nodes > MAX_NODES {
                self.stop(
                    pos,
                    format!("the file expands to more than {MAX_NODES} YAML nodes"),
                );
                return;
            }
        }
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let scalar = if style == TScalarStyle::Plain {
                    resolve_plain(&value)
                } else {
                    Scalar::Str(value)
                };
                self.push_node(
                    Node {
                        kind: NodeKind::Scalar(scalar),
                        pos,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                pos,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                pos,
                anchor,
                entries: Vec::new(),
                pending: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (
                        Node {
                            kind: NodeKind::Seq(items),
                            pos,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            kind: NodeKind::Map(self.merge_keys(entries)),
                            pos,
                        },
                        anchor,
                    ),
                    None => return,
                };
                self.push_node(node, anchor);
            }
            Event::Alias(id) => {
                let found = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _, _)| *a == id)
                    .map(|(_, n, size)| (n, *size));
                // Checked before the copy is made: an alias bomb is refused in microseconds.
                if let Some((_, n)) = found {
                    self.nodes += n;
                    if self.nodes > MAX_NODES {
                        self.stop(
                            pos,
                            format!(
                                "aliases expand the file to more than {MAX_NODES} YAML nodes \
                                 (nested anchors and aliases, an \"alias bomb\"?)"
                            ),
                        );
                        return;
                    }
                }
                match found.map(|(n, _)| n.clone()) {
                    Some(mut node) => {
                        node.pos = pos;
                        self.push_node(node, 0);
                    }
                    None => self.problems.push(YamlProblem {
                        pos,
                        message: "alias refers to an unknown anchor".into(),
                    }),
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let (root, problems) = parse("a: 1\nb:\n  c: [x, 2.5]\n");
        assert!(problems.is_empty());
        let root = root.unwrap();
        assert_eq!(root.key("b").unwrap().pos, Pos { line: 2, col: 1 });
        let c = root.get("b").unwrap().get("c").unwrap();
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
        match &c.kind {
            NodeKind::Seq(items) => {
                assert_eq!(items[0].pos, Pos { line: 3, col: 7 });
                assert_eq!(items[1].kind, NodeKind::Scalar(Scalar::Float(2.5)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quoted_numbers_stay_strings_and_duplicates_are_reported() {
        let (root, problems) = parse("a: '1'\na: 2\n");
        assert_eq!(root.unwrap().entries()[0].1.as_str(), Some("1"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pos, Pos { line: 2, col: 1 });
    }

    #[test]
    fn a_second_document_is_an_error_at_its_start() {
        let (root, problems) = parse("a: 1\n---\nb: 2\n");
        assert_eq!(root.unwrap().key("a").map(|n| n.pos.line), Some(1));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("one YAML document"));
        assert_eq!(problems[0].pos.line, 2);
        // One document with an explicit start and end marker is fine.
        let (_, problems) = parse("---\na: 1\n...\n");
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly_and_anchors_still_work() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..20 {
            let prev = (b'a' + (i - 1) as u8) as char;
            let name = (b'a' + i as u8) as char;
            bomb.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        // 10^20 nodes if expanded: refused when the count passes MAX_NODES, before any copy.
        let (_, problems) = parse(&bomb);
        assert!(
            problems.iter().any(|p| p.message.contains("alias bomb")),
            "{problems:?}"
        );
        let (root, problems) = parse("base: &b {x: 1, y: [1, 2]}\nother: *b\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(root.unwrap().key("other").is_some());
    }

    #[test]
    fn merge_keys_fill_in_what_a_mapping_does_not_set() {
        let (root, problems) = parse(
            "base: &b { x: 1, y: 2 }\nother: &o { z: 3 }\nm: { <<: [*b, *o], y: 5 }\nbad: { <<: 4 }\n",
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("merge key"));
        let m = root.unwrap().get("m").unwrap().to_json();
        assert_eq!(m, serde_json::json!({"x": 1, "y": 5, "z": 3}));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (_, problems) = parse("a: [1, 2\nb: 3\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.starts_with("invalid YAML"));
    }
}
