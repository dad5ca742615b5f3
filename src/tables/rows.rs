//! The tables, one row type each. Field names are column names; docs/outputs.md
//! describes the same columns for users.

use super::names::{Condition, Direction, MethodKind, ScoreMetric, VectorKind};
use crate::table;

table! {
    /// `extract/<fp>/activations.parquet`: one captured vector per pair side × hook point.
    pub struct ActivationRow = "activations" {
        pub example_id: String,
        /// `pos` or `neg`.
        pub side: String,
        pub layer: u32,
        /// Hook site (`resid_post`, …).
        pub site: String,
        /// The extract stage's `read_position`.
        pub position: String,
        pub vector: Vec<f32>,
    }
}

table! {
    /// `extract/<fp>/norms.parquet`: median token norm per hook point (first token excluded).
    pub struct NormRow = "norms" {
        pub layer: u32,
        pub site: String,
        pub median_norm: f32,
        pub n_tokens: u32,
    }
}

table! {
    /// `vectors/<fp>/vectors.parquet`: one steering object per method × layer.
    pub struct VectorRow = "vectors" {
        pub method: MethodKind,
        pub layer: u32,
        pub kind: VectorKind,
        pub params_hash: String,
        /// Norm before normalisation.
        pub norm_raw: f32,
        pub norm: f32,
        pub vector: Vec<f32>,
        /// JSON with method-specific facts.
        pub info: String,
    }
}

table! {
    /// `finetune/<fp>/train_log.parquet`: one row per optimizer step (`split` train) and
    /// per validation pass (`split` val: before training at step 0, after every epoch).
    pub struct TrainLogRow = "train_log" {
        pub method: MethodKind,
        /// Optimizer steps taken so far.
        pub step: u32,
        /// 1-based epoch (0: before training).
        pub epoch: u32,
        /// `train` or `val`.
        pub split: String,
        /// The objective's loss (SFT: mean token NLL of the positive answer; DPO: mean
        /// −log σ of the margin).
        pub loss: f64,
        /// Mean β [(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))] (β = 1 for SFT);
        /// NaN where not measured (SFT train steps).
        pub reward_margin: f64,
        /// Share of pairs with log π(chosen) > log π(rejected); NaN where not measured.
        pub pref_accuracy: f64,
    }
}

table! {
    /// `cost.parquet` (finetune, vectors): what each method's object cost to make.
    pub struct CostRow = "cost" {
        pub method: MethodKind,
        /// The stage that made it.
        pub stage: String,
        /// Wall time of training (finetune) or of computing the vectors (vectors; the
        /// extract stage's forward passes, shared by every vector method, are not in it).
        pub wall_s: f64,
        /// Tokens through forward passes (training, reference and validation).
        pub forward_tokens: f64,
        /// Tokens through backward passes.
        pub backward_tokens: f64,
        /// Parameters fitted (LoRA A and B entries; a vector's entries per layer).
        pub trainable_params: f64,
        /// Training pairs used.
        pub examples: u32,
    }
}

table! {
    /// `vectors/<fp>/fv_heads.parquet`: the function-vector head ranking, best first.
    pub struct FvHeadRow = "fv_heads" {
        pub rank: u32,
        pub layer: u32,
        pub head: u32,
        pub mean_indirect_effect: f32,
    }
}

table! {
    /// `scores.parquet` (evaluate, degradation): one measurement of one input.
    pub struct ScoreRow = "scores" {
        pub example_id: String,
        /// The dataset reference as written in the spec (`name.split`).
        pub dataset: String,
        /// `train` / `val` / `test`, or `all` for an unsplit reference.
        pub split: String,
        pub method: Condition,
        /// None (−1): baselines and all-layer methods.
        pub layer: Option<usize>,
        /// 0 for baselines; NaN for per-input fits over the multiplier sweep.
        pub multiplier: f64,
        /// Steered positions (`all`, `last`, …); `none` for baselines.
        pub position: String,
        pub metric: ScoreMetric,
        pub value: f64,
    }
}

table! {
    /// `aggregates.parquet`: per setting and metric, statistics over inputs.
    pub struct AggregateRow = "aggregates" {
        pub dataset: String,
        pub split: String,
        pub method: Condition,
        pub layer: Option<usize>,
        pub multiplier: f64,
        pub position: String,
        pub metric: ScoreMetric,
        /// Finite values aggregated.
        pub n: u32,
        pub mean: f64,
        pub std: f64,
        /// Percentile bootstrap 95% CI of the mean (NaN with fewer than 2 values).
        pub ci_low: f64,
        pub ci_high: f64,
        /// Share of negative values (the anti-steerable fraction for slopes).
        pub frac_negative: f64,
    }
}

table! {
    /// `evaluate/<fp>/selection.parquet`: per (dataset, method, position, direction) the
    /// (layer, multiplier) chosen on validation and its effect on the reported split.
    pub struct SelectionRow = "selection" {
        /// Dataset name without split.
        pub dataset: String,
        pub method: MethodKind,
        pub position: String,
        pub direction: Direction,
        pub selected_on: String,
        pub reported_on: String,
        pub layer: Option<usize>,
        pub multiplier: f64,
        /// Mean propensity at the chosen setting on `selected_on`.
        pub val_score: f64,
        /// Mean of per-input (steered − unsteered) propensity on `reported_on`, with CI.
        pub effect: f64,
        pub effect_ci_low: f64,
        pub effect_ci_high: f64,
        /// Effect in unsteered standard deviations.
        pub standardized_effect: f64,
        /// Per-input slopes at the chosen layer and position, over the whole sweep.
        pub steerability_mean: f64,
        pub steerability_std: f64,
        pub anti_steerable_fraction: f64,
        pub r2_mean: f64,
        pub n: u32,
    }
}

table! {
    /// `evaluate/<fp>/controls.parquet`: each control (random, shuffled) at exactly the
    /// setting selected for a method, and the method's margin over it.
    pub struct ControlRow = "controls" {
        pub dataset: String,
        /// The method whose setting this is.
        pub method: MethodKind,
        pub position: String,
        pub direction: Direction,
        pub control: MethodKind,
        pub layer: Option<usize>,
        pub multiplier: f64,
        /// The control's effect (steered − unsteered) on the reported split, with CI.
        pub effect: f64,
        pub effect_ci_low: f64,
        pub effect_ci_high: f64,
        /// Method − control, paired over inputs, with CI (signed like `effect`: toward,
        /// > 0 means the method beats the control; away, < 0).
        pub margin: f64,
        pub margin_ci_low: f64,
        pub margin_ci_high: f64,
        pub n: u32,
    }
}

table! {
    /// `evaluate/<fp>/turns.parquet` (conversation datasets): per setting, metric and
    /// scored turn, the effect over conversations and its persistence.
    pub struct TurnRow = "turns" {
        pub dataset: String,
        pub split: String,
        pub method: Condition,
        pub layer: Option<usize>,
        /// NaN for `steerability_slope` (a fit over the sweep).
        pub multiplier: f64,
        /// The turn scope (`all_turns`, `first_turn`, `current_turn`, `user_turns`);
        /// `none` for baselines.
        pub position: String,
        pub metric: ScoreMetric,
        /// 1-based assistant turn.
        pub turn: u32,
        /// Conversations scored at this turn.
        pub n: u32,
        /// Mean over conversations of (value − unsteered value); for
        /// `steerability_slope` the mean slope.
        pub effect: f64,
        pub effect_ci_low: f64,
        pub effect_ci_high: f64,
        /// effect at this turn ÷ effect at the first scored turn, over conversations
        /// scored at both; bootstrap CI resampling conversations.
        pub persistence: f64,
        pub persistence_ci_low: f64,
        pub persistence_ci_high: f64,
    }
}

table! {
    /// `evaluate/<fp>/generations.parquet`: continuations unsteered and at chosen settings.
    pub struct GenerationRow = "generations" {
        pub dataset: String,
        pub split: String,
        pub example_id: String,
        pub method: Condition,
        pub layer: Option<usize>,
        pub multiplier: f64,
        pub position: String,
        pub prompt: String,
        pub text: String,
        pub n_tokens: u32,
    }
}

table! {
    /// `degradation/<fp>/settings.parquet`: the steering settings measured.
    pub struct SettingRow = "settings" {
        pub method: MethodKind,
        pub layer: Option<usize>,
        pub multiplier: f64,
        /// Whether an evaluate stage chose this setting for some dataset.
        pub chosen: bool,
        /// Comma-separated datasets that chose it (`dataset` or `dataset (direction)`).
        pub chosen_for: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::names::BaselineCondition;
    use crate::tables::Table;

    fn round_trip<T: Table + PartialEq + std::fmt::Debug>(rows: Vec<T>) {
        let df = T::to_frame(&rows).unwrap();
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, T::COLUMNS, "{}", T::FILE);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{}.parquet", T::FILE));
        crate::store::write_parquet(&mut T::to_frame(&rows).unwrap(), &path).unwrap();
        let back: Vec<T> = crate::tables::read_table(dir.path()).unwrap();
        assert_eq!(back.len(), rows.len());
        // NaN != NaN: compare through Debug, which prints NaN the same way.
        assert_eq!(format!("{back:?}"), format!("{rows:?}"), "{}", T::FILE);
    }

    #[test]
    fn every_table_round_trips() {
        round_trip(vec![ActivationRow {
            example_id: "a".into(),
            side: "pos".into(),
            layer: 3,
            site: "resid_post".into(),
            position: "completion_mean".into(),
            vector: vec![1.0, -2.5],
        }]);
        round_trip(vec![NormRow {
            layer: 0,
            site: "resid_post".into(),
            median_norm: 1.5,
            n_tokens: 9,
        }]);
        round_trip(vec![VectorRow {
            method: MethodKind::Shuffled,
            layer: 2,
            kind: VectorKind::Additive,
            params_hash: "ab".into(),
            norm_raw: 3.0,
            norm: 1.0,
            vector: vec![0.5; 4],
            info: "{}".into(),
        }]);
        round_trip(vec![FvHeadRow {
            rank: 1,
            layer: 4,
            head: 2,
            mean_indirect_effect: 0.25,
        }]);
        round_trip(vec![
            ScoreRow {
                example_id: "x".into(),
                dataset: "d.val".into(),
                split: "val".into(),
                method: Condition::Steered(MethodKind::Caa),
                layer: Some(6),
                multiplier: -0.2,
                position: "all".into(),
                metric: ScoreMetric::Propensity,
                value: 1.25,
            },
            ScoreRow {
                example_id: "x".into(),
                dataset: "d.val".into(),
                split: "val".into(),
                method: Condition::Baseline(BaselineCondition::FewShot),
                layer: None,
                multiplier: f64::NAN,
                position: "none".into(),
                metric: ScoreMetric::SteerabilitySlope,
                value: f64::NAN,
            },
        ]);
        round_trip(vec![AggregateRow {
            dataset: "d.test".into(),
            split: "test".into(),
            method: Condition::UNSTEERED,
            layer: None,
            multiplier: 0.0,
            position: "none".into(),
            metric: ScoreMetric::McAccuracy,
            n: 3,
            mean: 0.5,
            std: 0.1,
            ci_low: 0.4,
            ci_high: 0.6,
            frac_negative: 0.0,
        }]);
        round_trip(vec![SelectionRow {
            dataset: "d".into(),
            method: MethodKind::Probe,
            position: "all".into(),
            direction: Direction::Away,
            selected_on: "val".into(),
            reported_on: "test".into(),
            layer: Some(12),
            multiplier: -0.1,
            val_score: -2.0,
            effect: -1.0,
            effect_ci_low: -1.5,
            effect_ci_high: -0.5,
            standardized_effect: -0.3,
            steerability_mean: 4.0,
            steerability_std: 1.0,
            anti_steerable_fraction: 0.1,
            r2_mean: 0.8,
            n: 10,
        }]);
        round_trip(vec![ControlRow {
            dataset: "d".into(),
            method: MethodKind::Caa,
            position: "all".into(),
            direction: Direction::Toward,
            control: MethodKind::Random,
            layer: Some(6),
            multiplier: 0.2,
            effect: 0.1,
            effect_ci_low: -0.1,
            effect_ci_high: 0.3,
            margin: 2.0,
            margin_ci_low: 1.0,
            margin_ci_high: 3.0,
            n: 10,
        }]);
        round_trip(vec![GenerationRow {
            dataset: "d.test".into(),
            split: "test".into(),
            example_id: "g".into(),
            method: Condition::UNSTEERED,
            layer: None,
            multiplier: 0.0,
            position: "none".into(),
            prompt: "p".into(),
            text: "t".into(),
            n_tokens: 5,
        }]);
        round_trip(vec![SettingRow {
            method: MethodKind::Caa,
            layer: Some(6),
            multiplier: 0.2,
            chosen: true,
            chosen_for: "d".into(),
        }]);
    }

    #[test]
    fn readers_name_the_bad_column_and_value() {
        use polars::prelude::*;
        let mut df = ScoreRow::to_frame(&[]).unwrap();
        df.drop_in_place("value").unwrap();
        let e = ScoreRow::from_frame(&df).unwrap_err();
        assert!(e.to_string().contains("`value` missing"), "{e}");
        let bad = df!(
            "method" => ["caa", "bogus"],
        )
        .unwrap();
        let e = <Condition as crate::tables::Cell>::read(&bad, "method").unwrap_err();
        assert!(
            e.to_string().contains("row 1") && e.to_string().contains("bogus"),
            "{e}"
        );
    }
}
