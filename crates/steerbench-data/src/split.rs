//! Seeded, stratified train / val / test splits (pure index math; no I/O).
//!
//! Items are shuffled within each stratum, interleaved proportionally (item r of a stratum of
//! size m sits at position (r + ½)/m), and the interleaved order is cut into contiguous chunks.
//! Each chunk therefore mirrors the strata mix; a final swap pass makes sure every stratum large
//! enough appears in every non-empty split (e.g. both answer letters of an A/B dataset).

use crate::error::{DataError, Result};
use crate::format::Records;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Train / val / test fractions of the (limited) dataset; each in 0..1, summing to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitFractions {
    /// Fraction for training (vector extraction).
    pub train: f64,
    /// Fraction for validation (choosing layer and multiplier).
    pub val: f64,
    /// Fraction for the reported test results.
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions {
            train: 0.6,
            val: 0.2,
            test: 0.2,
        }
    }
}

impl SplitFractions {
    /// What is wrong with these fractions: `(Some(split), message)` for one fraction outside
    /// 0..1, `(None, message)` for a sum other than 1. Empty when valid.
    pub fn problems(&self) -> Vec<(Option<SplitName>, String)> {
        let mut out = Vec::new();
        for split in SplitName::ALL {
            let v = self.get(split);
            if !(0.0..=1.0).contains(&v) {
                out.push((
                    Some(split),
                    format!("split fraction {split} = {v} is outside 0..1"),
                ));
            }
        }
        let sum: f64 = self.as_array().iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            let shown = (sum * 1e9).round() / 1e9;
            out.push((
                None,
                format!("split fractions must sum to 1, they sum to {shown}"),
            ));
        }
        out
    }

    pub fn validate(&self) -> Result<()> {
        let problems: Vec<String> = self.problems().into_iter().map(|(_, m)| m).collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DataError::Split(problems.join("; ")))
        }
    }

    /// The fraction of `split`.
    pub fn get(&self, split: SplitName) -> f64 {
        match split {
            SplitName::Train => self.train,
            SplitName::Val => self.val,
            SplitName::Test => self.test,
        }
    }

    fn as_array(&self) -> [f64; 3] {
        [self.train, self.val, self.test]
    }
}

/// One of the three splits (`<dataset>.train`, `.val`, `.test` in a pipeline spec).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Val, SplitName::Test];
    /// The names as written in specs, in [`SplitName::ALL`] order.
    pub const NAMES: [&'static str; 3] = ["train", "val", "test"];

    pub fn name(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }

    pub fn from_name(s: &str) -> Option<SplitName> {
        SplitName::ALL.into_iter().find(|x| x.name() == s)
    }
}

impl std::fmt::Display for SplitName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Indices into the full dataset for each split, each list ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl SplitIndices {
    pub fn get(&self, split: SplitName) -> &[usize] {
        match split {
            SplitName::Train => &self.train,
            SplitName::Val => &self.val,
            SplitName::Test => &self.test,
        }
    }
}

/// Records of each split.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    pub indices: SplitIndices,
    pub train: Records,
    pub val: Records,
    pub test: Records,
}

impl Splits {
    pub fn get(&self, split: SplitName) -> &Records {
        match split {
            SplitName::Train => &self.train,
            SplitName::Val => &self.val,
            SplitName::Test => &self.test,
        }
    }
}

/// Applies `limit` (a seeded, stratified subsample) and then splits `records`.
pub fn split_records(
    records: &Records,
    limit: Option<usize>,
    fractions: &SplitFractions,
    seed: u64,
) -> Result<Splits> {
    let indices = plan_split(&records.strata(), limit, fractions, seed)?;
    Ok(Splits {
        train: records.select(&indices.train),
        val: records.select(&indices.val),
        test: records.select(&indices.test),
        indices,
    })
}

/// Index form of [`split_records`]: `strata[i]` is record i's stratum (`None` = unstratified).
pub fn plan_split(
    strata: &[Option<String>],
    limit: Option<usize>,
    fractions: &SplitFractions,
    seed: u64,
) -> Result<SplitIndices> {
    fractions.validate()?;
    if limit == Some(0) {
        return Err(DataError::Split("limit must be at least 1".into()));
    }
    let kept = limit_indices(strata, limit, seed);
    let sub: Vec<Option<String>> = kept.iter().map(|&i| strata[i].clone()).collect();
    let local = split_indices(&sub, fractions, seed);
    let map = |v: Vec<usize>| v.into_iter().map(|i| kept[i]).collect();
    Ok(SplitIndices {
        train: map(local.train),
        val: map(local.val),
        test: map(local.test),
    })
}

/// A seeded, stratified subsample of `limit` indices (ascending); all indices without a limit.
pub fn limit_indices(strata: &[Option<String>], limit: Option<usize>, seed: u64) -> Vec<usize> {
    let n = strata.len();
    match limit {
        Some(l) if l < n => {
            // A different stream from the split's so the two draws are independent.
            let mut kept = interleave(strata, seed ^ 0x9E37_79B9_7F4A_7C15)[..l].to_vec();
            kept.sort_unstable();
            kept
        }
        _ => (0..n).collect(),
    }
}

/// Splits `0..strata.len()`; fractions are assumed valid.
fn split_indices(strata: &[Option<String>], fractions: &SplitFractions, seed: u64) -> SplitIndices {
    let fr = fractions.as_array();
    let counts = split_counts(strata.len(), &fr);
    let order = interleave(strata, seed);
    let mut parts: [Vec<usize>; 3] = Default::default();
    let mut start = 0;
    for (j, &c) in counts.iter().enumerate() {
        parts[j] = order[start..start + c].to_vec();
        start += c;
    }
    ensure_strata_coverage(&mut parts, strata, &fr);
    for p in &mut parts {
        p.sort_unstable();
    }
    let [train, val, test] = parts;
    SplitIndices { train, val, test }
}

/// Split sizes by largest remainder; every split with a non-zero fraction gets at least one item
/// when there are enough items.
fn split_counts(n: usize, fr: &[f64; 3]) -> [usize; 3] {
    let raw: Vec<f64> = fr.iter().map(|f| f * n as f64).collect();
    let mut counts: [usize; 3] = [0; 3];
    for j in 0..3 {
        counts[j] = raw[j].floor() as usize;
    }
    let mut by_remainder: Vec<usize> = (0..3).filter(|&j| fr[j] > 0.0).collect();
    by_remainder.sort_by(|&a, &b| (raw[b] - raw[b].floor()).total_cmp(&(raw[a] - raw[a].floor())));
    let mut left = n - counts.iter().sum::<usize>();
    for &j in by_remainder.iter().cycle() {
        if left == 0 {
            break;
        }
        counts[j] += 1;
        left -= 1;
    }
    let nonzero: Vec<usize> = (0..3).filter(|&j| fr[j] > 0.0).collect();
    if n >= nonzero.len() {
        for &j in &nonzero {
            if counts[j] == 0 {
                let donor = (0..3)
                    .max_by_key(|&d| (counts[d], std::cmp::Reverse(d)))
                    .expect("three splits");
                counts[donor] -= 1;
                counts[j] += 1;
            }
        }
    }
    counts
}

/// All indices, shuffled within each stratum and interleaved proportionally across strata.
fn interleave(strata: &[Option<String>], seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut groups: BTreeMap<&Option<String>, Vec<usize>> = BTreeMap::new();
    for (i, s) in strata.iter().enumerate() {
        groups.entry(s).or_default().push(i);
    }
    let mut keyed: Vec<(f64, usize, usize)> = Vec::with_capacity(strata.len());
    for (g, members) in groups.values_mut().enumerate() {
        members.shuffle(&mut rng);
        let m = members.len() as f64;
        keyed.extend(
            members
                .iter()
                .enumerate()
                .map(|(r, &i)| ((r as f64 + 0.5) / m, g, i)),
        );
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

/// Swaps items so that every stratum with at least one item per non-empty split appears in every
/// non-empty split, without removing any stratum from any split. Sizes are unchanged.
fn ensure_strata_coverage(parts: &mut [Vec<usize>; 3], strata: &[Option<String>], fr: &[f64; 3]) {
    let active: Vec<usize> = (0..3)
        .filter(|&j| fr[j] > 0.0 && !parts[j].is_empty())
        .collect();
    let mut sizes: BTreeMap<&Option<String>, usize> = BTreeMap::new();
    for s in strata {
        *sizes.entry(s).or_default() += 1;
    }
    let count =
        |part: &[usize], s: &Option<String>| part.iter().filter(|&&i| &strata[i] == s).count();
    for (s, &size) in &sizes {
        if size < active.len() {
            continue;
        }
        for &j in &active {
            if count(&parts[j], s) > 0 {
                continue;
            }
            let Some(&d) = active.iter().find(|&&d| count(&parts[d], s) >= 2) else {
                continue;
            };
            // An item of j whose stratum j holds at least twice, so j keeps that stratum.
            let Some(pos_j) = parts[j]
                .iter()
                .position(|&i| count(&parts[j], &strata[i]) >= 2)
            else {
                continue;
            };
            let pos_d = parts[d]
                .iter()
                .position(|&i| &strata[i] == *s)
                .expect("donor holds s");
            let (a, b) = (parts[j][pos_j], parts[d][pos_d]);
            parts[j][pos_j] = b;
            parts[d][pos_d] = a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ContrastiveAb, Letter};

    fn fr(train: f64, val: f64, test: f64) -> SplitFractions {
        SplitFractions { train, val, test }
    }

    fn none(n: usize) -> Vec<Option<String>> {
        vec![None; n]
    }

    fn partition_ok(s: &SplitIndices, n: usize) {
        let mut all: Vec<usize> = s
            .train
            .iter()
            .chain(&s.val)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..n).collect::<Vec<_>>(),
            "every record in exactly one split"
        );
    }

    #[test]
    fn every_record_in_exactly_one_split() {
        for n in 1..40 {
            for seed in 0..5 {
                let s = plan_split(&none(n), None, &fr(0.6, 0.2, 0.2), seed).unwrap();
                partition_ok(&s, n);
            }
        }
    }

    #[test]
    fn sizes_follow_fractions() {
        let s = plan_split(&none(100), None, &fr(0.6, 0.2, 0.2), 1).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (60, 20, 20));
        let s = plan_split(&none(10), None, &fr(0.8, 0.0, 0.2), 1).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (8, 0, 2));
    }

    #[test]
    fn small_splits_never_empty_when_n_at_least_3() {
        for n in 3..12 {
            for f in [
                fr(0.9, 0.05, 0.05),
                fr(0.98, 0.01, 0.01),
                fr(0.34, 0.33, 0.33),
                fr(0.05, 0.05, 0.9),
            ] {
                let s = plan_split(&none(n), None, &f, 3).unwrap();
                assert!(
                    !s.train.is_empty() && !s.val.is_empty() && !s.test.is_empty(),
                    "n={n} {f:?} {s:?}"
                );
            }
        }
    }

    #[test]
    fn deterministic_given_seed_and_seed_matters() {
        let strata: Vec<Option<String>> = (0..30).map(|i| Some(format!("{}", i % 3))).collect();
        let a = plan_split(&strata, None, &fr(0.6, 0.2, 0.2), 7).unwrap();
        let b = plan_split(&strata, None, &fr(0.6, 0.2, 0.2), 7).unwrap();
        let c = plan_split(&strata, None, &fr(0.6, 0.2, 0.2), 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn stratified_by_category_keeps_proportions() {
        // 20 of "x", 10 of "y": each split holds both in about a 2:1 ratio.
        let strata: Vec<Option<String>> = (0..30)
            .map(|i| Some(if i < 20 { "x" } else { "y" }.to_string()))
            .collect();
        for seed in 0..10 {
            let s = plan_split(&strata, None, &fr(0.6, 0.2, 0.2), seed).unwrap();
            for split in SplitName::ALL {
                let idx = s.get(split);
                let y = idx.iter().filter(|&&i| i >= 20).count();
                assert!(y > 0 && y < idx.len(), "{split:?} {idx:?}");
            }
            let y_train = s.train.iter().filter(|&&i| i >= 20).count();
            assert!((5..=7).contains(&y_train), "{y_train}");
        }
    }

    fn ab_records(letters: &[Letter]) -> Records {
        Records::ContrastiveAb(
            letters
                .iter()
                .enumerate()
                .map(|(i, &m)| ContrastiveAb {
                    id: i.to_string(),
                    question: "q".into(),
                    matching: m,
                    not_matching: if m == Letter::A { Letter::B } else { Letter::A },
                    category: None,
                })
                .collect(),
        )
    }

    fn letters_in(r: &Records) -> Vec<Letter> {
        let Records::ContrastiveAb(v) = r else {
            panic!()
        };
        v.iter().map(|x| x.matching).collect()
    }

    #[test]
    fn ab_splits_have_both_letters() {
        // Unbalanced and small cases, many seeds; every split here has at least two items except
        // in the 3/3 case (4/1/1).
        for (n_a, n_b) in [(3, 3), (5, 3), (10, 10), (12, 3), (4, 7), (2, 2)] {
            let mut letters = vec![Letter::A; n_a];
            letters.extend(vec![Letter::B; n_b]);
            for seed in 0..20 {
                let s =
                    split_records(&ab_records(&letters), None, &fr(0.6, 0.2, 0.2), seed).unwrap();
                for split in SplitName::ALL {
                    let l = letters_in(s.get(split));
                    if l.len() < 2 {
                        continue; // one item cannot hold both letters
                    }
                    assert!(
                        l.contains(&Letter::A) && l.contains(&Letter::B),
                        "{n_a}/{n_b} seed {seed} {split:?}: {l:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn limit_is_seeded_stratified_and_applied_before_split() {
        let mut letters = vec![Letter::A; 50];
        letters.extend(vec![Letter::B; 50]);
        let recs = ab_records(&letters);
        let s = split_records(&recs, Some(10), &fr(0.6, 0.2, 0.2), 4).unwrap();
        assert_eq!(s.train.len() + s.val.len() + s.test.len(), 10);
        let kept: Vec<usize> = s
            .indices
            .train
            .iter()
            .chain(&s.indices.val)
            .chain(&s.indices.test)
            .copied()
            .collect();
        assert_eq!(
            kept.iter().filter(|&&i| i < 50).count(),
            5,
            "limit keeps the letter balance"
        );
        assert_eq!(
            s,
            split_records(&recs, Some(10), &fr(0.6, 0.2, 0.2), 4).unwrap()
        );
        assert_ne!(
            s.indices,
            split_records(&recs, Some(10), &fr(0.6, 0.2, 0.2), 5)
                .unwrap()
                .indices
        );
        // A limit at or above n keeps everything.
        let all = split_records(&recs, Some(1000), &fr(0.6, 0.2, 0.2), 4).unwrap();
        assert_eq!(
            all.indices,
            split_records(&recs, None, &fr(0.6, 0.2, 0.2), 4)
                .unwrap()
                .indices
        );
        assert_eq!(limit_indices(&none(5), Some(3), 1).len(), 3);
    }

    #[test]
    fn invalid_fractions_and_limit() {
        assert!(plan_split(&none(5), None, &fr(0.5, 0.2, 0.2), 0).is_err());
        assert!(plan_split(&none(5), None, &fr(1.2, -0.2, 0.0), 0).is_err());
        assert!(plan_split(&none(5), None, &fr(f64::NAN, 0.5, 0.5), 0).is_err());
        let err = plan_split(&none(5), Some(0), &fr(0.6, 0.2, 0.2), 0).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn fractions_deserialize_strictly() {
        let f: SplitFractions =
            serde_json::from_str(r#"{"train":0.8,"val":0,"test":0.2}"#).unwrap();
        assert_eq!(f, fr(0.8, 0.0, 0.2));
        let err = serde_json::from_str::<SplitFractions>(r#"{"train":0.8,"test":0.2}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `val`"), "{err}");
        assert!(serde_json::from_str::<SplitFractions>(r#"{"train":1,"valid":0}"#).is_err());
        assert_eq!(SplitName::from_name("val"), Some(SplitName::Val));
        assert_eq!(SplitName::Test.to_string(), "test");
    }

    #[test]
    fn problems_name_the_fraction_or_the_sum() {
        assert!(fr(0.6, 0.2, 0.2).problems().is_empty());
        assert_eq!(
            fr(0.6, 0.3, 0.2).problems(),
            [(
                None,
                "split fractions must sum to 1, they sum to 1.1".to_string()
            )]
        );
        let p = fr(1.2, -0.2, 0.0).problems();
        assert_eq!(
            p.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [Some(SplitName::Train), Some(SplitName::Val)]
        );
        assert_eq!(p[1].1, "split fraction val = -0.2 is outside 0..1");
        let err = fr(f64::NAN, 0.5, 0.5).validate().unwrap_err().to_string();
        assert!(err.contains("train = NaN"), "{err}");
    }
}
