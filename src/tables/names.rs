//! The names stored in the tables' string columns, as enums shared by the spec, the
//! stages and the report. Each has one name table (`Display` and `FromStr` agree by
//! construction) and exhaustive matches wherever its meaning is used, so adding a
//! variant is a compile error at every place that must decide about it.

use std::fmt;

use crate::spec::{DegradationMetric, FinetuneMethod, Method, Metric};

/// An unknown name in a table column.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {what} `{name}` (expected one of: {expected})")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub expected: String,
}

/// Declares a fieldless enum with one string name per variant.
#[macro_export]
macro_rules! name_enum {
    (
        $(#[$meta:meta])*
        pub enum $E:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $V:ident => $name:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $E { $( $(#[$vmeta])* $V ),+ }

        impl $E {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$E] = &[$($E::$V),+];
            pub fn name(self) -> &'static str {
                match self { $( $E::$V => $name ),+ }
            }
        }

        impl std::fmt::Display for $E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $E {
            type Err = $crate::tables::names::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $name => Ok($E::$V), )+
                    other => Err($crate::tables::names::UnknownName {
                        what: $what,
                        name: other.to_string(),
                        expected: [$($name),+].join(", "),
                    }),
                }
            }
        }

        $crate::name_cell!($E);
    };
}

name_enum! {
    /// A per-input measurement in `scores.parquet` / `aggregates.parquet`.
    pub enum ScoreMetric ("metric") {
        /// p(matching letter) / (p(A) + p(B)) (contrastive_ab).
        AbProbability => "ab_probability",
        /// p(A) / (p(A) + p(B)): the letter bias.
        PAShare => "p_a_share",
        /// log p(matching) − log p(not matching), summed over the continuation (A/B: the
        /// letters; ICL: log p(correct first answer token)).
        Propensity => "propensity",
        /// The same, divided by the continuations' token counts.
        PropensityNorm => "propensity_norm",
        /// Open-ended: summed log-likelihood of matching minus not-matching continuation.
        LoglikMatchingMinusNot => "loglik_matching_minus_not",
        /// `loglik_matching_minus_not` steered minus unsteered, per input.
        OpenEndedLikelihood => "open_ended_likelihood",
        /// 1 when the top next token is the correct first answer token (icl_task).
        IclAccuracy => "icl_accuracy",
        /// Per-input OLS slope of propensity against multiplier (multiplier NaN).
        SteerabilitySlope => "steerability_slope",
        /// R² of that fit.
        SteerabilityR2 => "steerability_r2",
        /// cos(generation, positive reference) − cos(generation, negative reference).
        GenConceptSimilarity => "gen_concept_similarity",
        /// Perplexity of the generation under the unsteered model.
        GenFluencyPpl => "gen_fluency_ppl",
        /// Distinct unigrams / tokens of the generation.
        GenDistinct1 => "gen_distinct_1",
        /// Distinct bigrams / bigrams of the generation.
        GenDistinct2 => "gen_distinct_2",
        /// Tool-choice generations: 1 when the first JSON object in the continuation names
        /// a declared tool and its arguments fit the tool's schema, else 0.
        GenToolCallValid => "gen_tool_call_valid",
        /// Tool-choice generations: 1 when the continuation holds a JSON object at all.
        GenToolCallJson => "gen_tool_call_json",
        /// Degradation: exp(mean NLL) of a corpus window.
        Perplexity => "perplexity",
        /// Degradation: KL(unsteered ‖ steered) of the next-token distribution, nats.
        KlUnsteered => "kl_unsteered",
        /// Degradation: 1/0 per multiple-choice question.
        McAccuracy => "mc_accuracy",
        /// Degradation: 1/0 per neutral tool-choice task (top-1 call by mean log-prob).
        ToolAccuracy => "tool_accuracy",
    }
}

/// What makes a stage compute a score metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedBy {
    /// Always computed by `evaluate`: selection, steerability and baselines rest on it.
    Always,
    /// An `evaluate` metric of the spec.
    Evaluate(Metric),
    /// A `degradation` metric of the spec.
    Degradation(DegradationMetric),
}

impl ScoreMetric {
    pub fn requested_by(self) -> RequestedBy {
        use ScoreMetric::*;
        match self {
            Propensity => RequestedBy::Always,
            AbProbability | PAShare => RequestedBy::Evaluate(Metric::AbProbability),
            PropensityNorm => RequestedBy::Evaluate(Metric::Propensity),
            LoglikMatchingMinusNot | OpenEndedLikelihood => {
                RequestedBy::Evaluate(Metric::OpenEndedLikelihood)
            }
            IclAccuracy => RequestedBy::Evaluate(Metric::IclAccuracy),
            SteerabilitySlope | SteerabilityR2 => RequestedBy::Evaluate(Metric::Steerability),
            GenConceptSimilarity | GenFluencyPpl | GenDistinct1 | GenDistinct2
            | GenToolCallValid | GenToolCallJson => RequestedBy::Evaluate(Metric::Generation),
            Perplexity => RequestedBy::Degradation(DegradationMetric::Perplexity),
            KlUnsteered => RequestedBy::Degradation(DegradationMetric::KlUnsteered),
            McAccuracy => RequestedBy::Degradation(DegradationMetric::McAccuracy),
            ToolAccuracy => RequestedBy::Degradation(DegradationMetric::ToolAccuracy),
        }
    }

    /// Whether an `evaluate` stage asking for `metrics` keeps this score.
    pub fn wanted_by(self, metrics: &[Metric]) -> bool {
        match self.requested_by() {
            RequestedBy::Always => true,
            RequestedBy::Evaluate(m) => metrics.contains(&m),
            RequestedBy::Degradation(_) => false,
        }
    }

    /// The score a degradation metric writes.
    pub fn of_degradation(m: DegradationMetric) -> ScoreMetric {
        match m {
            DegradationMetric::Perplexity => ScoreMetric::Perplexity,
            DegradationMetric::KlUnsteered => ScoreMetric::KlUnsteered,
            DegradationMetric::McAccuracy => ScoreMetric::McAccuracy,
            DegradationMetric::ToolAccuracy => ScoreMetric::ToolAccuracy,
        }
    }
}

name_enum! {
    /// A steering method (vector extraction) or a fine-tuning baseline (`finetune`), as
    /// named in the spec and in the `method` columns.
    pub enum MethodKind ("method") {
        Caa => "caa",
        Pca => "pca",
        PcaCenter => "pca_center",
        Probe => "probe",
        Icv => "icv",
        FunctionVector => "function_vector",
        Ablation => "ablation",
        Affine => "affine",
        Mlp => "mlp",
        Random => "random",
        Shuffled => "shuffled",
        /// LoRA by supervised fine-tuning on the positive side (a `finetune` stage).
        SftLora => "sft_lora",
        /// LoRA by DPO on the pairs (a `finetune` stage).
        DpoLora => "dpo_lora",
    }
}

impl MethodKind {
    /// Controls are never selected on their own: they are evaluated at the setting
    /// chosen for each method they control.
    pub fn is_control(self) -> bool {
        matches!(self, MethodKind::Random | MethodKind::Shuffled)
    }

    /// A fine-tuned adapter rather than a steering intervention: no layer, no
    /// position, its multiplier scales the LoRA delta.
    pub fn is_finetune(self) -> bool {
        matches!(self, MethodKind::SftLora | MethodKind::DpoLora)
    }
}

impl From<&Method> for MethodKind {
    fn from(m: &Method) -> Self {
        match m {
            Method::Caa => MethodKind::Caa,
            Method::Pca => MethodKind::Pca,
            Method::PcaCenter => MethodKind::PcaCenter,
            Method::Probe(_) => MethodKind::Probe,
            Method::Icv(_) => MethodKind::Icv,
            Method::FunctionVector(_) => MethodKind::FunctionVector,
            Method::Ablation => MethodKind::Ablation,
            Method::Affine(_) => MethodKind::Affine,
            Method::Mlp(_) => MethodKind::Mlp,
            Method::Random(_) => MethodKind::Random,
            Method::Shuffled(_) => MethodKind::Shuffled,
        }
    }
}

impl From<&FinetuneMethod> for MethodKind {
    fn from(m: &FinetuneMethod) -> Self {
        match m {
            FinetuneMethod::SftLora(_) => MethodKind::SftLora,
            FinetuneMethod::DpoLora(_) => MethodKind::DpoLora,
        }
    }
}

name_enum! {
    /// A prompting or counterbalancing baseline: the unsteered model on other prompts.
    pub enum BaselineCondition ("baseline") {
        /// The unsteered model on the dataset's own prompts (layer −1, multiplier 0).
        Unsteered => "unsteered",
        SystemPromptPositive => "system_prompt_positive",
        SystemPromptNegative => "system_prompt_negative",
        /// k behaviour-matching demonstrations from the train split.
        FewShot => "few_shot",
        /// A/B items with the answer letters exchanged.
        LetterSwap => "letter_swap",
    }
}

/// The `method` column of score tables: a steering method or a baseline condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    Baseline(BaselineCondition),
    Steered(MethodKind),
}

impl Condition {
    pub const UNSTEERED: Condition = Condition::Baseline(BaselineCondition::Unsteered);

    pub fn method(self) -> Option<MethodKind> {
        match self {
            Condition::Steered(m) => Some(m),
            Condition::Baseline(_) => None,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Baseline(b) => b.fmt(f),
            Condition::Steered(m) => m.fmt(f),
        }
    }
}

impl std::str::FromStr for Condition {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        if let Ok(b) = s.parse() {
            return Ok(Condition::Baseline(b));
        }
        s.parse().map(Condition::Steered).map_err(|_| UnknownName {
            what: "method or baseline",
            name: s.to_string(),
            expected: BaselineCondition::ALL
                .iter()
                .map(|b| b.name())
                .chain(MethodKind::ALL.iter().map(|m| m.name()))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

crate::name_cell!(Condition);

name_enum! {
    /// Which way a selection steers.
    pub enum Direction ("direction") {
        /// Positive multipliers; the effect is an increase of the metric.
        Toward => "toward",
        /// Negative multipliers; the effect is a decrease of the metric.
        Away => "away",
    }
}

impl Direction {
    /// +1 toward, −1 away: multiplies an effect so that larger is better.
    pub fn sign(self) -> f64 {
        match self {
            Direction::Toward => 1.0,
            Direction::Away => -1.0,
        }
    }

    /// Whether a multiplier steers this way (0 steers neither way).
    pub fn admits(self, multiplier: f64) -> bool {
        match self {
            Direction::Toward => multiplier > 0.0,
            Direction::Away => multiplier < 0.0,
        }
    }
}

name_enum! {
    /// How a stored steering object is applied (the evaluate stage builds the hook from it).
    pub enum VectorKind ("vector kind") {
        /// Added at its layer: `h + alpha v`.
        Additive => "additive",
        /// Projected out at every layer.
        Ablation => "ablation",
        /// One vector per layer, applied at all layers with norm preservation.
        Icv => "icv",
        /// An affine map at its layer (matrix and bias in maps.safetensors).
        Affine => "affine",
        /// An MLP at its layer (weights in maps.safetensors).
        Mlp => "mlp",
        /// Added at the one layer it was built for (function vectors): no layer sweep.
        FixedAdditive => "fixed_additive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in ScoreMetric::ALL {
            assert_eq!(m.name().parse::<ScoreMetric>().unwrap(), *m);
        }
        for m in MethodKind::ALL {
            let c = Condition::Steered(*m);
            assert_eq!(c.to_string().parse::<Condition>().unwrap(), c);
        }
        for b in BaselineCondition::ALL {
            let c = Condition::Baseline(*b);
            assert_eq!(c.to_string().parse::<Condition>().unwrap(), c);
        }
    }

    #[test]
    fn unknown_names_say_what_was_expected() {
        let e = "few_shot_negative".parse::<Condition>().unwrap_err();
        assert!(e.to_string().contains("few_shot_negative"), "{e}");
        assert!(e.to_string().contains("unsteered"), "{e}");
        assert!("propensityy".parse::<ScoreMetric>().is_err());
    }

    #[test]
    fn spec_method_names_are_method_kinds() {
        for name in Method::NAMES.iter().chain(FinetuneMethod::NAMES) {
            assert!(name.parse::<MethodKind>().is_ok(), "{name}");
        }
        assert_eq!(
            Method::NAMES.len() + FinetuneMethod::NAMES.len(),
            MethodKind::ALL.len()
        );
        for name in FinetuneMethod::NAMES {
            assert!(name.parse::<MethodKind>().unwrap().is_finetune(), "{name}");
        }
    }
}
