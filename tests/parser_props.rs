//! Property tests (issue 17): random mutations of valid specs and datasets never make the
//! parsers panic; they return Ok or Err, within a time bound. One property runs the binary
//! `validate` on mutated specs and checks its exit code is 0 or 2.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use steerbench_data::{load_bytes, FieldMap, FileType, Format};

const SPEC: &str = r#"name: props
seed: 7
model: smollm2-135m-instruct
prompt_format: chat
datasets:
  d: &ds { source: d.jsonl, format: contrastive_completion, split: { train: 0.5, val: 0.2, test: 0.3 }, limit: 8 }
  ab: { source: builtin:sentiment_ab, format: contrastive_ab, fields: { question: question } }
  corpus: { source: c.jsonl, format: text, window_tokens: 64 }
stages:
  acts: { extract: { dataset: d.train, layers: [3, 5], read_position: completion_mean } }
  vecs:
    vectors:
      activations: acts
      methods: [caa, pca, { probe: { l2: 0.5 } }, random]
      normalize: resid_norm
  eval:
    evaluate:
      vectors: vecs
      datasets: [d.test, ab.test]
      layers: [3]
      multipliers: [-1, 0, 0.5, 1]
      positions: [all, { indices: [-1] }]
      metrics: [propensity, ab_probability]
      baselines: [letter_swap, { few_shot: { k: 2 } }]
  dmg: { degradation: { vectors: vecs, from: eval, corpus: corpus.test, metrics: [perplexity] } }
  report: { report: { inputs: [eval, dmg] } }
"#;

const JSONL: &str = r#"{"id": "a", "prompt": "Tell me about cats.", "positive": " Lovely.", "negative": " Awful."}
{"id": "b", "prompt": "Tell me about rain.", "positive": " Refreshing.", "negative": " Gloomy."}
{"id": "c", "prompt": "Tell me about work.", "positive": " Rewarding.", "negative": " Tiring."}
"#;

const AB_JSONL: &str = r#"{"question": "Good?\n (A) Yes\n (B) No", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}
{"question": "Bad?\n (A) Yes\n (B) No", "answer_matching_behavior": "(B)", "answer_not_matching_behavior": "(A)"}
"#;

const ICL_JSON: &str = r#"[{"input": "hot", "output": "cold"}, {"input": "up", "output": 7}, {"input": "big", "output": "small"}]"#;

const CSV: &str = "id,question,choices,answer\nq1,Which?,\"[\"\"a\"\",\"\"b\"\"]\",0\nq2,What?,\"[\"\"c\"\",\"\"d\"\"]\",1\n";

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Swap(usize, usize),
    Insert(usize, Vec<u8>),
    Truncate(usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let chars = prop::collection::vec(
        prop_oneof![
            prop::sample::select(b"{}[]:,-&*!|>'\"#\n\t .0123456789e".to_vec()),
            any::<u8>(),
        ],
        1..8,
    );
    prop_oneof![
        (any::<usize>(), 1usize..16).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 1usize..32).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (any::<usize>(), chars).prop_map(|(a, c)| Mutation::Insert(a, c)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn apply(bytes: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for m in muts {
        let len = b.len().max(1);
        match m {
            Mutation::Delete(a, n) => {
                let a = a % len;
                let e = (a + n).min(b.len());
                if a < e {
                    b.drain(a..e);
                }
            }
            Mutation::Duplicate(a, n) => {
                let a = a % len;
                let e = (a + n).min(b.len());
                if a < e {
                    let piece = b[a..e].to_vec();
                    b.splice(e..e, piece);
                }
            }
            Mutation::Swap(x, y) => {
                if !b.is_empty() {
                    let (x, y) = (x % b.len(), y % b.len());
                    b.swap(x, y);
                }
            }
            Mutation::Insert(a, c) => {
                let a = a % (b.len() + 1);
                b.splice(a..a, c.iter().copied());
            }
            Mutation::Truncate(a) => b.truncate(a % len),
            Mutation::DeleteLine(_) | Mutation::DuplicateLine(_) | Mutation::SwapLines(..) => {
                let mut lines: Vec<Vec<u8>> =
                    b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                match m {
                    Mutation::DeleteLine(i) => {
                        lines.remove(i % n);
                    }
                    Mutation::DuplicateLine(i) => {
                        let l = lines[i % n].clone();
                        lines.insert(i % n, l);
                    }
                    Mutation::SwapLines(x, y) => lines.swap(x % n, y % n),
                    _ => unreachable!(),
                }
                b = lines.join(&b'\n');
            }
        }
    }
    b
}

const TIME_BOUND: Duration = Duration::from_secs(5);

fn check_spec(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let start = Instant::now();
    let r = std::panic::catch_unwind(|| {
        let _ = steerbench::spec::parse_str(&text, "pipeline.yaml", Path::new("."));
    });
    prop_assert!(r.is_ok(), "spec parser panicked on:\n{text}");
    prop_assert!(
        start.elapsed() < TIME_BOUND,
        "spec parser took {:?}",
        start.elapsed()
    );
    Ok(())
}

fn check_data(bytes: &[u8], file_type: FileType, format: Format) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let fields = FieldMap::default_for(format);
    let r = std::panic::catch_unwind(|| {
        let _ = load_bytes(bytes, "d", file_type, &fields, None);
    });
    prop_assert!(
        r.is_ok(),
        "dataset parser panicked ({file_type:?}, {format:?}) on:\n{}",
        String::from_utf8_lossy(bytes)
    );
    prop_assert!(
        start.elapsed() < TIME_BOUND,
        "dataset parser took {:?}",
        start.elapsed()
    );
    Ok(())
}

fn muts() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_specs_never_panic(m in muts()) {
        check_spec(&apply(SPEC.as_bytes(), &m))?;
    }

    #[test]
    fn mutated_jsonl_never_panics(m in muts()) {
        let b = apply(JSONL.as_bytes(), &m);
        check_data(&b, FileType::Jsonl, Format::ContrastiveCompletion)?;
        check_data(&b, FileType::Jsonl, Format::OpenEnded)?;
    }

    #[test]
    fn mutated_ab_jsonl_never_panics(m in muts()) {
        check_data(&apply(AB_JSONL.as_bytes(), &m), FileType::Jsonl, Format::ContrastiveAb)?;
    }

    #[test]
    fn mutated_icl_json_never_panics(m in muts()) {
        check_data(&apply(ICL_JSON.as_bytes(), &m), FileType::Json, Format::IclTask)?;
    }

    #[test]
    fn mutated_csv_never_panics(m in muts()) {
        check_data(&apply(CSV.as_bytes(), &m), FileType::Csv, Format::MultipleChoice)?;
    }

    #[test]
    fn random_bytes_never_panic_any_parser(b in prop::collection::vec(any::<u8>(), 0..256)) {
        check_spec(&b)?;
        for ft in [FileType::Jsonl, FileType::Json, FileType::Csv, FileType::Parquet] {
            check_data(&b, ft, Format::Text)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// The binary, given a mutated spec, exits 0 (valid) or 2 (spec errors), never panics.
    #[test]
    fn validate_binary_exits_0_or_2_on_mutated_specs(m in muts()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pipeline.yaml"), apply(SPEC.as_bytes(), &m)).unwrap();
        let start = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_steerbench"))
            .args(["validate", "pipeline.yaml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert!(matches!(out.status.code(), Some(0) | Some(2)), "exit {:?}: {stderr}", out.status);
        prop_assert!(!stderr.contains("panicked"), "{stderr}");
        prop_assert!(start.elapsed() < Duration::from_secs(30), "validate took {:?}", start.elapsed());
    }
}
