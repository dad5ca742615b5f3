//! A realistic synthetic `ReportData` (deterministic; no RNG crate) shared by the tests and
//! the `render_sample` example.
#![allow(dead_code)]

use steerbench_report::*;

/// Tiny deterministic generator (SplitMix64) so the fixture never changes.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly standard normal (sum of 12 uniforms).
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

pub const METHODS: [&str; 3] = ["caa", "pca", "probe"];
pub const DATASETS: [&str; 2] = ["sentiment", "formality"];
pub const LAYERS: [usize; 3] = [6, 10, 14];
pub const MULTS: [f64; 5] = [-2.0, -1.0, 0.0, 1.0, 2.0];

/// How strongly a method steers a dataset at a layer (per unit multiplier).
fn strength(d: usize, m: usize, layer: usize) -> f64 {
    let base = [[1.2, 0.8, 0.5], [0.6, 0.4, 0.1]][d][m];
    let peak = 1.0 - ((layer as f64 - 10.0) / 8.0).powi(2);
    base * peak
}

fn est(v: f64, half: f64) -> Estimate {
    Estimate::with_ci(v, v - half, v + half)
}

/// Random and shuffled controls at a row's setting (`sign`: of its multiplier), with the
/// row's margin over each (deterministic, so they leave the generator's stream unchanged).
fn controls(effect: f64, sign: f64, d: usize, m: usize) -> Vec<ControlEffect> {
    let random = sign * (0.02 - 0.01 * (d + m) as f64);
    let shuffled = sign * (-0.04 + 0.05 * m as f64);
    [
        (BaselineKind::Random, random),
        (BaselineKind::Shuffled, shuffled),
    ]
    .into_iter()
    .map(|(kind, e)| ControlEffect {
        kind,
        effect: Some(est(e, 0.15)),
        margin: Some(est(effect - e, 0.22)),
    })
    .collect()
}

fn effect_metrics(g: &mut Gen, effect: f64, n: usize) -> EffectMetrics {
    EffectMetrics {
        effect: Some(est(effect, 0.18 + 0.05 * g.uniform())),
        standardized_effect: Some(est(effect / 0.9, 0.2)),
        steerability_mean: Some(effect / 2.0),
        steerability_std: Some(0.3 + 0.2 * g.uniform()),
        anti_steerable_fraction: Some((0.35 - effect * 0.12).clamp(0.02, 0.6)),
        r_squared: Some((0.3 + effect * 0.25).clamp(0.0, 0.95)),
        n: Some(n),
    }
}

pub fn sample() -> ReportData {
    let mut g = Gen::new(7);
    let methods: Vec<String> = METHODS.iter().map(|s| s.to_string()).collect();

    let mut main = Vec::new();
    let mut away_rows = Vec::new();
    let mut baselines = Vec::new();
    let mut curves = Vec::new();
    let mut heatmap = Vec::new();
    let mut slopes = Vec::new();
    let mut pareto = Vec::new();
    let mut at_chosen = Vec::new();
    for (d, dataset) in DATASETS.iter().enumerate() {
        let metric = if d == 0 {
            "propensity"
        } else {
            "ab_probability"
        };
        for (m, method) in METHODS.iter().enumerate() {
            let effect = 2.0 * strength(d, m, 10);
            main.push(MainRow {
                dataset: dataset.to_string(),
                method: method.to_string(),
                metric: metric.into(),
                direction: Direction::Toward,
                best_layer: Some(10),
                best_multiplier: Some(2.0),
                metrics: effect_metrics(&mut g, effect, 24),
                controls: controls(effect, 1.0, d, m),
            });
            // Away: the mirrored setting, a weaker decrease (no generator draws).
            let away = -0.8 * effect;
            away_rows.push(MainRow {
                dataset: dataset.to_string(),
                method: method.to_string(),
                metric: metric.into(),
                direction: Direction::Away,
                best_layer: Some(10),
                best_multiplier: Some(-2.0),
                metrics: EffectMetrics {
                    effect: Some(est(away, 0.2)),
                    standardized_effect: Some(est(away / 0.9, 0.2)),
                    steerability_mean: Some(effect / 2.0),
                    steerability_std: Some(0.4),
                    anti_steerable_fraction: Some((0.35 - effect * 0.12).clamp(0.02, 0.6)),
                    r_squared: Some((0.3 + effect * 0.25).clamp(0.0, 0.95)),
                    n: Some(24),
                },
                controls: controls(away, -1.0, d, m),
            });
            for (x, kl) in [(2.0, 0.05), (-2.0, 0.04)] {
                at_chosen.push(DegradationRow {
                    dataset: Some(dataset.to_string()),
                    method: method.to_string(),
                    layer: Some(10),
                    multiplier: x,
                    perplexity: Some(est(14.2 + 1.5 * (m + 1) as f64, 0.6)),
                    perplexity_ratio: None,
                    kl: Some(est(kl + 0.04 * (m + 1) as f64, 0.01)),
                    // Four choices: at chance (25%) everywhere, hence the caution below.
                    mc_accuracy: Some(est(0.26 - 0.01 * m as f64, 0.05)),
                    tool_accuracy: None,
                });
            }
            for &layer in &LAYERS {
                let s = strength(d, m, layer);
                curves.push(Curve {
                    dataset: dataset.to_string(),
                    method: method.to_string(),
                    layer: Some(layer),
                    metric: metric.into(),
                    points: MULTS
                        .iter()
                        .map(|&x| {
                            let mean = s * x + 0.05 * g.normal();
                            let half = 0.15 + 0.05 * x.abs();
                            CurvePoint {
                                multiplier: x,
                                mean,
                                ci_low: Some(mean - half),
                                ci_high: Some(mean + half),
                            }
                        })
                        .collect(),
                });
                for &x in &MULTS {
                    heatmap.push(HeatCell {
                        dataset: dataset.to_string(),
                        method: method.to_string(),
                        metric: metric.into(),
                        layer,
                        multiplier: x,
                        value: s * x + 0.03 * g.normal(),
                    });
                    if x != 0.0 {
                        pareto.push(ParetoPoint {
                            dataset: dataset.to_string(),
                            method: method.to_string(),
                            layer,
                            multiplier: x,
                            effect: s * x.abs() + 0.05 * g.normal(),
                            degradation: 0.02
                                * x
                                * x
                                * (1.0 + 0.4 * m as f64)
                                * (layer as f64 / 10.0)
                                + 0.01 * g.uniform(),
                        });
                    }
                }
            }
            let s = strength(d, m, 10);
            slopes.push(SlopeSet {
                dataset: dataset.to_string(),
                method: method.to_string(),
                layer: Some(10),
                slopes: (0..40).map(|_| s + 0.6 * g.normal()).collect(),
            });
        }
        let b = |kind, layer, multiplier, effect: f64, g: &mut Gen| BaselineRow {
            dataset: dataset.to_string(),
            baseline: kind,
            metric: metric.into(),
            layer,
            multiplier,
            metrics: effect_metrics(g, effect, 24),
        };
        baselines.push(b(BaselineKind::Unsteered, None, None, 0.0, &mut g));
        // Random and shuffled are controls of the main rows (`controls`), not baselines.
        baselines.push(b(
            BaselineKind::SystemPromptPositive,
            None,
            None,
            0.9,
            &mut g,
        ));
        baselines.push(b(
            BaselineKind::SystemPromptNegative,
            None,
            None,
            -0.7,
            &mut g,
        ));
        baselines.push(b(BaselineKind::FewShotPositive, None, None, 0.5, &mut g));
    }
    let sweep = METHODS
        .iter()
        .enumerate()
        .flat_map(|(m, method)| {
            MULTS
                .iter()
                .filter(|x| **x != 0.0)
                .map(move |&x| DegradationRow {
                    dataset: None,
                    method: method.to_string(),
                    layer: Some(10),
                    multiplier: x,
                    perplexity: Some(est(14.2 * (1.0 + 0.03 * x * x * (m + 1) as f64), 0.5)),
                    perplexity_ratio: None,
                    kl: Some(est(0.012 * x * x * (m + 1) as f64, 0.004)),
                    mc_accuracy: Some(est(0.25 + 0.01 * x * (m as f64 - 1.0), 0.05)),
                    tool_accuracy: None,
                })
        })
        .collect();

    ReportData {
        title: "quickstart".into(),
        provenance: Provenance {
            model_id: "smollm2-135m-instruct".into(),
            model_dtype: None,
            weight_hash: Some(
                "3f1c9a0e5b7d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e".into(),
            ),
            datasets: vec![
                DatasetProvenance {
                    name: "sentiment".into(),
                    source: Some("builtin:sentiment_ab".into()),
                    hash: Some("a1b2c3d4e5f60718".into()),
                    sha256: None,
                },
                DatasetProvenance {
                    name: "formality".into(),
                    source: Some("builtin:formality_ab".into()),
                    hash: Some("0f1e2d3c4b5a6978".into()),
                    sha256: None,
                },
            ],
            spec_hash: Some("9c8b7a6f5e4d3c2b".into()),
            steerbench_version: "0.1.0".into(),
            git_commit: Some("78513d6".into()),
            seed: Some(0),
            hardware: Some("2 × x86_64 CPU, 7.7 GiB RAM, no GPU".into()),
            stage_times: vec![
                StageTime {
                    stage: "acts".into(),
                    seconds: 41.2,
                    cached: false,
                },
                StageTime {
                    stage: "vectors".into(),
                    seconds: 0.84,
                    cached: false,
                },
                StageTime {
                    stage: "effect".into(),
                    seconds: 245.0,
                    cached: false,
                },
                StageTime {
                    stage: "damage".into(),
                    seconds: 96.5,
                    cached: true,
                },
            ],
        },
        setup: Setup {
            methods,
            layers: LAYERS.to_vec(),
            multipliers: MULTS.to_vec(),
            positions: vec!["all".into()],
            splits: DATASETS
                .iter()
                .map(|d| SplitInfo {
                    dataset: d.to_string(),
                    train: 36,
                    val: 12,
                    test: 24,
                })
                .collect(),
            metrics: vec!["ab_probability".into(), "propensity".into()],
        },
        main: main.into_iter().chain(away_rows).collect(),
        baselines,
        cautions: vec![Caution {
            metric: "mc_accuracy".into(),
            dataset: None,
            chance: 0.25,
            observed_low: 0.22,
            observed_high: 0.28,
        }],
        degradation: Degradation {
            unsteered: Some(DegradationReference {
                perplexity: Some(est(14.2, 0.5)),
                mc_accuracy: Some(est(0.25, 0.05)),
                tool_accuracy: None,
            }),
            at_chosen,
            sweep,
        },
        letter_bias: vec![
            LetterBiasRow {
                dataset: "sentiment".into(),
                condition: "unsteered".into(),
                p_a_original: Some(est(0.71, 0.04)),
                p_a_swapped: Some(est(0.52, 0.05)),
                n: Some(24),
            },
            LetterBiasRow {
                dataset: "sentiment".into(),
                condition: "caa L10 ×2".into(),
                p_a_original: Some(est(0.83, 0.03)),
                p_a_swapped: Some(est(0.40, 0.05)),
                n: Some(24),
            },
        ],
        icl: vec![
            IclRow {
                task: "antonyms".into(),
                method: "function_vector".into(),
                layer: Some(9),
                zero_shot: Some(est(0.05, 0.03)),
                few_shot: Some(est(0.62, 0.08)),
                zero_shot_vector: Some(est(0.38, 0.08)),
                n: Some(50),
            },
            IclRow {
                task: "country_capital".into(),
                method: "icv".into(),
                layer: None,
                zero_shot: Some(est(0.10, 0.04)),
                few_shot: Some(est(0.74, 0.07)),
                zero_shot_vector: None,
                n: Some(50),
            },
        ],
        generations: vec![GenerationRow {
            dataset: Some("sentiment".into()),
            prompt: "Write one sentence about the weather today.".into(),
            unsteered: "The weather today is mild with a few clouds.".into(),
            steered: "What a glorious, sunny day | full of joy!\nTruly lovely.".into(),
            method: "caa".into(),
            layer: Some(10),
            multiplier: 2.0,
        }],
        generation_quality: vec![
            GenerationQualityRow {
                dataset: "sentiment".into(),
                method: "unsteered".into(),
                layer: None,
                multiplier: None,
                concept_similarity: Some(est(-0.02, 0.03)),
                fluency_ppl: Some(est(6.1, 0.8)),
                distinct_2: Some(est(0.93, 0.02)),
                tool_call_json: None,
                tool_call_valid: None,
                n: Some(12),
            },
            GenerationQualityRow {
                dataset: "sentiment".into(),
                method: "caa".into(),
                layer: Some(10),
                multiplier: Some(2.0),
                concept_similarity: Some(est(0.21, 0.05)),
                fluency_ppl: Some(est(9.4, 1.6)),
                distinct_2: Some(est(0.88, 0.03)),
                tool_call_json: None,
                tool_call_valid: None,
                n: Some(12),
            },
        ],
        turns: Vec::new(),
        training: Vec::new(),
        costs: Vec::new(),
        curves,
        heatmap,
        slopes,
        pareto: Pareto {
            effect_label: "propensity effect".into(),
            degradation_label: "KL from unsteered (nats)".into(),
            points: pareto,
        },
        reproduce: vec![
            "steerbench run pipelines/quickstart.yaml".into(),
            "steerbench report runs/quickstart".into(),
        ],
        behaviours: Vec::new(),
    }
}

/// A wide sweep (many methods, layers and multipliers) to check legends and panels scale.
pub fn sample_large() -> ReportData {
    let mut data = sample();
    let methods = [
        "caa",
        "pca",
        "probe",
        "mean_centring",
        "ito",
        "function_vector",
        "random",
        "shuffled",
    ];
    let layers: Vec<usize> = (2..=16).step_by(2).collect();
    let mults = [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0];
    let mut g = Gen::new(11);
    data.setup.methods = methods.iter().map(|s| s.to_string()).collect();
    data.setup.layers = layers.clone();
    data.setup.multipliers = mults.to_vec();
    data.curves.clear();
    data.heatmap.clear();
    data.slopes.clear();
    data.pareto.points.clear();
    for (m, method) in methods.iter().enumerate() {
        let base = 1.0 / (1.0 + m as f64);
        for &layer in &layers {
            let s = base * (1.0 - ((layer as f64 - 9.0) / 9.0).powi(2));
            data.curves.push(Curve {
                dataset: "sentiment".into(),
                method: method.to_string(),
                layer: Some(layer),
                metric: "propensity".into(),
                points: mults
                    .iter()
                    .map(|&x| {
                        let mean = s * x + 0.05 * g.normal();
                        CurvePoint {
                            multiplier: x,
                            mean,
                            ci_low: Some(mean - 0.2),
                            ci_high: Some(mean + 0.2),
                        }
                    })
                    .collect(),
            });
            for &x in &mults {
                data.heatmap.push(HeatCell {
                    dataset: "sentiment".into(),
                    method: method.to_string(),
                    metric: "propensity".into(),
                    layer,
                    multiplier: x,
                    value: s * x,
                });
                data.pareto.points.push(ParetoPoint {
                    dataset: "sentiment".into(),
                    method: method.to_string(),
                    layer,
                    multiplier: x,
                    effect: s * x,
                    degradation: 0.01 * x * x * (1.0 + m as f64 * 0.2) + 0.005 * g.uniform(),
                });
            }
        }
        data.slopes.push(SlopeSet {
            dataset: "sentiment".into(),
            method: method.to_string(),
            layer: None,
            slopes: (0..200).map(|_| base + 0.5 * g.normal()).collect(),
        });
    }
    data
}
