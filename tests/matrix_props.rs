//! Property tests of matrix expansion: random matrices and `foreach` choices expand to
//! exactly the product of their axes, every reference lands on a cell that exists (the
//! spec validates), and random edits of a matrix spec never panic the loader.

use std::path::Path;

use proptest::prelude::*;
use steerbench::spec::{self, matrix::Section};

/// A spec over `axes` (axis i has `sizes[i]` values); `acts`/`vecs`/`sweep` expand over
/// the axes in `foreach` (indices), `report` reads every `sweep` cell.
fn spec_text(sizes: &[usize], foreach: &[usize], sweep_extra: &[usize]) -> String {
    let axes: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let vals: Vec<String> = (0..*n).map(|v| format!("x{i}v{v}")).collect();
            format!("  ax{i}: [{}]\n", vals.join(", "))
        })
        .collect();
    let list = |ix: &[usize]| {
        ix.iter()
            .map(|i| format!("ax{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sweep_axes: Vec<usize> = foreach.to_vec();
    sweep_axes.extend(sweep_extra);
    format!(
        r#"name: props
model: m
matrix:
{}datasets:
  data: {{ foreach: [{f}], source: "{src}.jsonl", format: contrastive_ab }}
stages:
  acts: {{ foreach: [{f}], extract: {{ dataset: data.train }} }}
  vecs: {{ foreach: [{f}], vectors: {{ activations: acts, methods: [caa] }} }}
  sweep:
    foreach: [{s}]
    evaluate: {{ vectors: vecs, datasets: [data.test], layers: [1], multipliers: [1], metrics: [propensity] }}
  report: {{ report: {{ inputs: [sweep] }} }}
"#,
        axes.concat(),
        f = list(foreach),
        s = list(&sweep_axes),
        src = foreach
            .iter()
            .map(|i| format!("{{ax{i}}}"))
            .collect::<Vec<_>>()
            .join("_"),
    )
}

/// Axis sizes, a non-empty subset for the datasets and early stages, the rest for `sweep`.
fn matrices() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..4, 1..4).prop_flat_map(|sizes| {
        let n = sizes.len();
        (Just(sizes), prop::collection::vec(any::<bool>(), n)).prop_map(|(sizes, pick)| {
            let mut foreach: Vec<usize> = (0..sizes.len()).filter(|&i| pick[i]).collect();
            if foreach.is_empty() {
                foreach.push(0);
            }
            let extra: Vec<usize> = (0..sizes.len()).filter(|i| !foreach.contains(i)).collect();
            (sizes, foreach, extra)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn expansion_is_the_product_and_every_reference_resolves((sizes, foreach, extra) in matrices()) {
        let text = spec_text(&sizes, &foreach, &extra);
        let spec = spec::parse_str(&text, "p.yaml", Path::new("."))
            .unwrap_or_else(|d| panic!("{text}\n{d}"));
        let base: usize = foreach.iter().map(|&i| sizes[i]).product();
        let all: usize = sizes.iter().product();
        prop_assert_eq!(spec.datasets.len(), base);
        prop_assert_eq!(spec.stages.len(), 2 * base + all + 1);
        let mut names: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        prop_assert_eq!(names.len(), spec.stages.len());
        prop_assert_eq!(spec.matrix.cells_of("sweep", Section::Stages).count(), all);
        // The report reads every sweep cell, in matrix order.
        let report = serde_json::to_value(&spec.stage("report").unwrap().spec).unwrap();
        let inputs: Vec<String> = report["report"]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let cells: Vec<String> = spec
            .matrix
            .cells_of("sweep", Section::Stages)
            .map(|c| c.name.clone())
            .collect();
        prop_assert_eq!(inputs, cells);
    }

    #[test]
    fn edits_of_a_matrix_spec_never_panic(
        (sizes, foreach, extra) in matrices(),
        at in any::<prop::sample::Index>(),
        len in 0usize..12,
        insert in prop::sample::select(vec!["", "{", "}", "[", "]", ",", "{ax0}", "foreach: ax9\n", "\n  ", ": ", "ax0", "[]"]),
    ) {
        let text = spec_text(&sizes, &foreach, &extra);
        let start = at.index(text.len());
        let end = (start + len).min(text.len());
        let mutated = format!("{}{insert}{}", &text[..start], &text[end..]);
        let _ = spec::parse_str(&mutated, "p.yaml", Path::new("."));
    }
}
