//! `ReportData`: everything a report shows, as plain serde types.
//!
//! The pipeline fills this from its Parquet outputs; this crate never reads
//! Parquet. Measurements are `f64`; layers and counts are integers. Anything a
//! run may not have produced is an `Option` (scalars) or an empty `Vec`
//! (row lists), and the report says so instead of inventing numbers.

use serde::{Deserialize, Serialize};

/// A point estimate with an optional 95% confidence interval (bootstrap over inputs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    pub value: f64,
    #[serde(default)]
    pub ci_low: Option<f64>,
    #[serde(default)]
    pub ci_high: Option<f64>,
}

impl Estimate {
    pub fn new(value: f64) -> Self {
        Self {
            value,
            ci_low: None,
            ci_high: None,
        }
    }
    pub fn with_ci(value: f64, ci_low: f64, ci_high: f64) -> Self {
        Self {
            value,
            ci_low: Some(ci_low),
            ci_high: Some(ci_high),
        }
    }
    /// True when a CI is present and lies entirely on one side of zero.
    pub fn ci_excludes_zero(&self) -> bool {
        matches!((self.ci_low, self.ci_high), (Some(lo), Some(hi)) if lo > 0.0 || hi < 0.0)
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportData {
    /// Pipeline name; the report title.
    pub title: String,
    pub provenance: Provenance,
    pub setup: Setup,
    /// Per (dataset, method, direction): the validation-chosen setting evaluated on test,
    /// with the vector controls evaluated at that same setting. `Toward` rows make the
    /// headline table, `Away` rows a second table.
    #[serde(default)]
    pub main: Vec<MainRow>,
    /// Reference conditions without a steering vector of their own: the unsteered model and
    /// prompting. The random and shuffled vector controls live in `MainRow::controls`.
    #[serde(default)]
    pub baselines: Vec<BaselineRow>,
    /// Metrics that stayed at chance for every evaluated setting, so they cannot tell
    /// methods apart; each is noted beside that metric's table and its cells are marked `†`.
    #[serde(default)]
    pub cautions: Vec<Caution>,
    #[serde(default)]
    pub degradation: Degradation,
    #[serde(default)]
    pub letter_bias: Vec<LetterBiasRow>,
    /// Empty: the pipeline has no ICL stage (the section is left out).
    #[serde(default)]
    pub icl: Vec<IclRow>,
    /// Empty: no generations were sampled (the section is left out).
    #[serde(default)]
    pub generations: Vec<GenerationRow>,
    /// Scores of the sampled generations per (dataset, method); empty without generations.
    #[serde(default)]
    pub generation_quality: Vec<GenerationQualityRow>,
    /// Conversations: per selected setting and turn scope, the effect at each scored turn
    /// and its persistence. Empty: no conversation dataset (the section is left out).
    #[serde(default)]
    pub turns: Vec<TurnPoint>,
    #[serde(default)]
    pub curves: Vec<Curve>,
    #[serde(default)]
    pub heatmap: Vec<HeatCell>,
    #[serde(default)]
    pub slopes: Vec<SlopeSet>,
    #[serde(default)]
    pub pareto: Pareto,
    /// Shell commands that reproduce this report, shown verbatim.
    #[serde(default)]
    pub reproduce: Vec<String>,
    /// Fine-tuning baselines: their training logs (the loss curves). Empty: no `finetune`
    /// stage (the section is left out).
    #[serde(default)]
    pub training: Vec<TrainPoint>,
    /// What each method's steering object cost to make (steering and fine-tuning alike).
    /// Empty: no `finetune` stage.
    #[serde(default)]
    pub costs: Vec<CostLine>,
    /// The behaviours compared: one per `evaluate` stage among the report's inputs (the
    /// pipeline lists them by stage name). With two or more, the report opens with the
    /// cross-behaviour scorecard (see [`crate::scorecard`]); with one or none it is left out.
    #[serde(default)]
    pub behaviours: Vec<Behaviour>,
}

/// One behaviour of the cross-behaviour scorecard: one `evaluate` stage of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// The name shown (see [`crate::scorecard::behaviour_labels`]): `refusal` for a stage
    /// `sweep[refusal]`, else the stage's only dataset, else the stage name.
    pub label: String,
    /// The `evaluate` stage's name in the spec.
    pub stage: String,
    /// This stage's own main rows (as in [`ReportData::main`], which holds every stage's);
    /// the scorecard reads their `Toward` rows. Kept per behaviour because two stages may
    /// evaluate the same dataset (a matrix over layers or normalisations, say).
    #[serde(default)]
    pub main: Vec<MainRow>,
    /// Degradation measured with this behaviour's vectors (by a degradation stage that
    /// steered with the vectors this evaluate stage used); `None`: no such stage among the
    /// report's inputs. Rows as in [`ReportData::degradation`].
    #[serde(default)]
    pub degradation: Option<Degradation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub model_id: String,
    pub weight_hash: Option<String>,
    /// The dtype the model's weights were held in (`f32`, `bf16`, `f16`), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_dtype: Option<String>,
    #[serde(default)]
    pub datasets: Vec<DatasetProvenance>,
    pub spec_hash: Option<String>,
    pub steerbench_version: String,
    pub git_commit: Option<String>,
    pub seed: Option<u64>,
    pub hardware: Option<String>,
    #[serde(default)]
    pub stage_times: Vec<StageTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetProvenance {
    pub name: String,
    /// Where it came from (`builtin:sentiment_ab`, a path, a URL).
    pub source: Option<String>,
    pub hash: Option<String>,
    /// URL sources: sha256 of the downloaded bytes (what `sha256:` pins and lock files hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
    /// True when the stage was reused from the cache rather than run.
    #[serde(default)]
    pub cached: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub layers: Vec<usize>,
    #[serde(default)]
    pub multipliers: Vec<f64>,
    /// Token-position selector(s), e.g. `all`, `last`.
    #[serde(default)]
    pub positions: Vec<String>,
    #[serde(default)]
    pub splits: Vec<SplitInfo>,
    /// Metric names evaluated, e.g. `propensity`, `ab_probability`.
    #[serde(default)]
    pub metrics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitInfo {
    pub dataset: String,
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

/// Effect metrics shared by the main and the baselines tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectMetrics {
    /// Steered minus unsteered mean of the metric on test.
    pub effect: Option<Estimate>,
    /// Effect in units of the unsteered metric's standard deviation.
    pub standardized_effect: Option<Estimate>,
    /// Per-input steerability (OLS slope vs multiplier): mean and std over inputs.
    pub steerability_mean: Option<f64>,
    pub steerability_std: Option<f64>,
    /// Share of inputs with a negative slope, in [0, 1].
    pub anti_steerable_fraction: Option<f64>,
    /// Share of variance explained by the per-input linear fits, in [0, 1].
    pub r_squared: Option<f64>,
    /// Number of test inputs.
    pub n: Option<usize>,
}

/// Which way a setting steers: the sign of its multiplier and of the effect it was chosen for.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Toward the behaviour: positive multipliers, chosen for the largest increase of the
    /// metric. The headline direction.
    #[default]
    Toward,
    /// Away from the behaviour: negative multipliers, chosen for the largest decrease.
    Away,
}

impl Direction {
    /// `toward` / `away`, as in the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Toward => "toward",
            Self::Away => "away",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vector control evaluated at exactly the (layer, multiplier) chosen for the method it
/// controls (norm-matched to that method's vector), on the same test inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlEffect {
    /// `Random` or `Shuffled`.
    pub kind: BaselineKind,
    /// The control's effect: steered minus unsteered mean of the row's metric (the same sign
    /// convention as `MainRow::metrics.effect`), with its bootstrap CI.
    #[serde(default)]
    pub effect: Option<Estimate>,
    /// The method's effect minus this control's effect, with a paired bootstrap CI over
    /// inputs. A `Toward` row beats its control when the margin is positive, an `Away` row
    /// when it is negative.
    #[serde(default)]
    pub margin: Option<Estimate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MainRow {
    pub dataset: String,
    pub method: String,
    /// The metric the effect is measured in (`propensity`, `ab_probability`, ...).
    pub metric: String,
    /// `Toward`: selected over positive multipliers for the largest increase; `Away`: over
    /// negative multipliers for the largest decrease. `metrics.effect` is steered minus
    /// unsteered either way, so a successful `Away` row has a negative effect.
    #[serde(default)]
    pub direction: Direction,
    /// Chosen on the validation split, within `direction`.
    pub best_layer: Option<usize>,
    pub best_multiplier: Option<f64>,
    #[serde(default)]
    pub metrics: EffectMetrics,
    /// The vector controls (random, shuffled) at this row's own (layer, multiplier), with the
    /// method's margin over each. Empty: no controls were evaluated (the table shows `—`).
    #[serde(default)]
    pub controls: Vec<ControlEffect>,
}

impl MainRow {
    /// The control of `kind`, if evaluated (the first one when listed twice).
    pub fn control(&self, kind: BaselineKind) -> Option<&ControlEffect> {
        self.controls.iter().find(|c| c.kind == kind)
    }

    /// The margin that says least for the method: the smallest margin of a `Toward` row,
    /// the largest of an `Away` row. `None` without margins.
    pub fn weakest_margin(&self) -> Option<(BaselineKind, Estimate)> {
        let sign = match self.direction {
            Direction::Toward => 1.0,
            Direction::Away => -1.0,
        };
        self.controls
            .iter()
            .filter_map(|c| Some((c.kind, c.margin?)))
            .filter(|(_, m)| !m.value.is_nan())
            .min_by(|a, b| (sign * a.1.value).total_cmp(&(sign * b.1.value)))
    }

    /// True when the row has at least one control and, for every control, a margin whose
    /// 95% CI lies entirely on the row's side of zero (above for `Toward`, below for `Away`).
    pub fn beats_every_control(&self) -> bool {
        !self.controls.is_empty()
            && self.controls.iter().all(|c| {
                c.margin.is_some_and(|m| match (m.ci_low, m.ci_high) {
                    (Some(lo), Some(hi)) => match self.direction {
                        Direction::Toward => lo > 0.0,
                        Direction::Away => hi < 0.0,
                    },
                    _ => false,
                })
            })
    }
}

/// Reference conditions and vector controls. `Unsteered` and the prompting kinds are
/// `BaselineRow`s; `Random` and `Shuffled` are `ControlEffect`s of a `MainRow` (a
/// `BaselineRow` of those kinds still renders, but the pipeline no longer emits one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    Unsteered,
    /// A random vector, norm-matched to the method's vector.
    Random,
    /// A vector extracted like the method's from label-shuffled pairs (a null).
    Shuffled,
    SystemPromptPositive,
    SystemPromptNegative,
    FewShotPositive,
}

impl BaselineKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Unsteered => "unsteered",
            Self::Random => "random vector",
            Self::Shuffled => "shuffled vector",
            Self::SystemPromptPositive => "system prompt (+)",
            Self::SystemPromptNegative => "system prompt (-)",
            Self::FewShotPositive => "few-shot (+)",
        }
    }

    /// The serde name (`random`, `system_prompt_positive`, ...), as in the CSV exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsteered => "unsteered",
            Self::Random => "random",
            Self::Shuffled => "shuffled",
            Self::SystemPromptPositive => "system_prompt_positive",
            Self::SystemPromptNegative => "system_prompt_negative",
            Self::FewShotPositive => "few_shot_positive",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRow {
    pub dataset: String,
    pub baseline: BaselineKind,
    pub metric: String,
    /// Only for vector kinds (random, shuffled), which the pipeline now reports as
    /// `MainRow::controls` instead.
    #[serde(default)]
    pub layer: Option<usize>,
    #[serde(default)]
    pub multiplier: Option<f64>,
    #[serde(default)]
    pub metrics: EffectMetrics,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Degradation {
    /// The unsteered model's own numbers, the reference for ratios.
    #[serde(default)]
    pub unsteered: Option<DegradationReference>,
    /// At each (dataset, method)'s chosen setting.
    #[serde(default)]
    pub at_chosen: Vec<DegradationRow>,
    /// Across the whole multiplier sweep.
    #[serde(default)]
    pub sweep: Vec<DegradationRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradationReference {
    pub perplexity: Option<Estimate>,
    pub mc_accuracy: Option<Estimate>,
    /// Top-1 accuracy in [0, 1] on neutral tool-choice tasks.
    #[serde(default)]
    pub tool_accuracy: Option<Estimate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradationRow {
    /// The dataset whose chosen setting this is (`at_chosen` rows only).
    #[serde(default)]
    pub dataset: Option<String>,
    pub method: String,
    pub layer: Option<usize>,
    pub multiplier: f64,
    pub perplexity: Option<Estimate>,
    /// Steered / unsteered perplexity; derived from `Degradation::unsteered` when absent.
    #[serde(default)]
    pub perplexity_ratio: Option<f64>,
    /// KL(unsteered ‖ steered) of next-token distributions on neutral prompts, in nats.
    pub kl: Option<Estimate>,
    /// Accuracy in [0, 1] on the multiple-choice benchmark.
    pub mc_accuracy: Option<Estimate>,
    /// Top-1 accuracy in [0, 1] on neutral tool-choice tasks (the column shows only
    /// when some row or the reference has it).
    #[serde(default)]
    pub tool_accuracy: Option<Estimate>,
}

/// A metric that stayed within its chance band for every evaluated setting (the pipeline
/// decides the band), e.g. 4-choice accuracy at 25%: it cannot tell methods apart. The
/// report notes it beside that metric's table and marks the column or cells with `†`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caution {
    /// The metric's name as used elsewhere in `ReportData`: `mc_accuracy` (the degradation
    /// tables' MC accuracy column) or a `MainRow`/`BaselineRow::metric` (`propensity`, ...).
    pub metric: String,
    /// The dataset it applies to; `None`: every dataset (and for `mc_accuracy`, the
    /// multiple-choice benchmark itself).
    #[serde(default)]
    pub dataset: Option<String>,
    /// The chance level, in the metric's units (a fraction for accuracies: 0.25).
    pub chance: f64,
    /// The lowest and highest value observed over every evaluated setting.
    pub observed_low: f64,
    pub observed_high: f64,
}

/// A/B answer-letter bias: share of p(A) / (p(A) + p(B)) with the original and the swapped letter order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LetterBiasRow {
    pub dataset: String,
    /// What was evaluated: `unsteered`, or e.g. `caa L10 x2`.
    pub condition: String,
    pub p_a_original: Option<Estimate>,
    pub p_a_swapped: Option<Estimate>,
    #[serde(default)]
    pub n: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IclRow {
    pub task: String,
    /// The vector method (`function_vector`, `icv`, ...).
    pub method: String,
    #[serde(default)]
    pub layer: Option<usize>,
    /// Top-1 accuracies in [0, 1].
    pub zero_shot: Option<Estimate>,
    pub few_shot: Option<Estimate>,
    pub zero_shot_vector: Option<Estimate>,
    #[serde(default)]
    pub n: Option<usize>,
}

/// One scored turn of the conversations of a dataset under one condition: a method at
/// the setting chosen on validation toward the behaviour, in one turn scope, or a
/// prompting baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnPoint {
    pub dataset: String,
    /// `all_turns`, `first_turn`, `current_turn`, `user_turns`; `none` for baselines.
    pub scope: String,
    pub method: String,
    #[serde(default)]
    pub layer: Option<usize>,
    #[serde(default)]
    pub multiplier: Option<f64>,
    /// `propensity`, or a score of the turns the model wrote (`gen_concept_similarity`,
    /// `gen_fluency_ppl`).
    pub metric: String,
    /// 1-based assistant turn.
    pub turn: u32,
    pub n: usize,
    /// Mean (condition − unsteered) value over conversations at this turn.
    pub effect: Estimate,
    /// effect at this turn ÷ effect at the first turn.
    #[serde(default)]
    pub persistence: Option<Estimate>,
}

/// Mean scores of one condition's generations on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationQualityRow {
    pub dataset: String,
    /// `unsteered` or a method at its chosen setting.
    pub method: String,
    #[serde(default)]
    pub layer: Option<usize>,
    #[serde(default)]
    pub multiplier: Option<f64>,
    /// cos(generation, positive reference) − cos(generation, negative reference).
    pub concept_similarity: Option<Estimate>,
    /// Perplexity of the generation under the unsteered model.
    pub fluency_ppl: Option<Estimate>,
    pub distinct_2: Option<Estimate>,
    /// Tool-choice data: share of continuations holding a JSON object.
    #[serde(default)]
    pub tool_call_json: Option<Estimate>,
    /// Tool-choice data: share of continuations whose JSON is a call of a declared tool
    /// with arguments fitting its schema (the columns show only when some row has them).
    #[serde(default)]
    pub tool_call_valid: Option<Estimate>,
    #[serde(default)]
    pub n: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationRow {
    #[serde(default)]
    pub dataset: Option<String>,
    pub prompt: String,
    pub unsteered: String,
    pub steered: String,
    pub method: String,
    #[serde(default)]
    pub layer: Option<usize>,
    pub multiplier: f64,
}

/// Mean metric vs multiplier for one (dataset, method, layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Curve {
    pub dataset: String,
    pub method: String,
    /// `None`: a method that acts on all layers at once (ICV, ablation).
    #[serde(default)]
    pub layer: Option<usize>,
    pub metric: String,
    pub points: Vec<CurvePoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurvePoint {
    pub multiplier: f64,
    pub mean: f64,
    #[serde(default)]
    pub ci_low: Option<f64>,
    #[serde(default)]
    pub ci_high: Option<f64>,
}

/// One cell of a layer × multiplier heat map (tidy: one row per cell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeatCell {
    pub dataset: String,
    pub method: String,
    pub metric: String,
    pub layer: usize,
    pub multiplier: f64,
    pub value: f64,
}

/// Per-input steerability slopes of one method on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlopeSet {
    pub dataset: String,
    pub method: String,
    #[serde(default)]
    pub layer: Option<usize>,
    pub slopes: Vec<f64>,
}

/// Effect vs degradation for every (method, layer, multiplier) evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pareto {
    /// Axis label of the effect, e.g. `propensity effect`. Larger is better.
    pub effect_label: String,
    /// Axis label of the degradation, e.g. `KL from unsteered (nats)`. Smaller is better.
    pub degradation_label: String,
    #[serde(default)]
    pub points: Vec<ParetoPoint>,
}

impl Default for Pareto {
    fn default() -> Self {
        Self {
            effect_label: "effect".into(),
            degradation_label: "degradation".into(),
            points: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParetoPoint {
    pub dataset: String,
    pub method: String,
    pub layer: usize,
    pub multiplier: f64,
    pub effect: f64,
    pub degradation: f64,
}

/// One line of a fine-tuning baseline's training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainPoint {
    pub method: String,
    /// `train` (one optimizer step) or `val` (after an epoch; step 0 before training).
    pub split: String,
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    /// DPO's implicit reward margin (β = 1 for SFT); None where not measured.
    pub reward_margin: Option<f64>,
    /// Share of pairs with log π(chosen) > log π(rejected); None where not measured.
    pub pref_accuracy: Option<f64>,
}

/// What one method's steering object cost to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostLine {
    pub method: String,
    /// What the cost covers, e.g. `finetune ft` or `extract acts + vectors vectors`.
    pub made_by: String,
    pub wall_s: f64,
    pub forward_tokens: Option<f64>,
    pub backward_tokens: Option<f64>,
    pub trainable_params: Option<f64>,
    pub examples: Option<usize>,
}
