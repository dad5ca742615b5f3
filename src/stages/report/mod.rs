//! `report`: builds the report's data from other stages' typed tables and renders it
//! with steerbench-report. `steerbench report RUN_DIR` calls the same [`build`] on the
//! same folders, so it reproduces report.md byte for byte without loading the model.
//! Each section of the report is one function of a submodule.

mod damage;
mod effects;
mod finetune;
mod generations;
mod inputs;
mod plots;
mod provenance;
mod turns;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use steerbench_report as rep;

use super::common::{self, Ctx};
use crate::exec::{StageOutputs, StageRunner};
use crate::spec::StageSpec;
use crate::tables::AggregateRow;

pub struct Report;

impl StageRunner<common::Services> for Report {
    fn version(&self) -> u32 {
        // 2: main rows per direction with controls at the method's setting; cautions.
        // 3: the cross-behaviour scorecard (two or more evaluate inputs).
        3
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        let StageSpec::Report(p) = ctx.params() else {
            bail!("not a report stage")
        };
        let inputs: Vec<PathBuf> = p
            .inputs
            .iter()
            .map(|name| Ok(ctx.input_dir(name)?.to_path_buf()))
            .collect::<Result<_>>()?;
        let data = build(&inputs)?;
        // Relative to the spec's folder, as `plan` hashed it (not the current directory).
        let template = p.template.as_deref().map(|t| ctx.spec_path(t));
        rep::render(&data, ctx.out_dir(), template.as_deref())?;
        Ok(StageOutputs::default())
    }
}

/// An estimate, with its CI when both bounds are finite.
pub(crate) fn est(mean: f64, lo: f64, hi: f64) -> rep::Estimate {
    if lo.is_finite() && hi.is_finite() {
        rep::Estimate::with_ci(mean, lo, hi)
    } else {
        rep::Estimate::new(mean)
    }
}

pub(crate) fn fin(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// A dataset's label in tables: the name, with the position selector unless `all`.
pub(crate) fn label(dataset: &str, position: &str) -> String {
    if position == "all" {
        dataset.to_string()
    } else {
        format!("{dataset} ({position})")
    }
}

/// Which split of each dataset the report shows: `test` where it was evaluated, else
/// every evaluated split.
pub(crate) struct Reported {
    with_test: std::collections::BTreeSet<String>,
}

impl Reported {
    fn new(aggs: &[AggregateRow]) -> Reported {
        Reported {
            with_test: aggs
                .iter()
                .filter(|a| a.split == "test")
                .map(|a| crate::analysis::index::base_name(&a.dataset).to_string())
                .collect(),
        }
    }
    pub fn is_reported(&self, dataset: &str, split: &str) -> bool {
        !self
            .with_test
            .contains(crate::analysis::index::base_name(dataset))
            || split == "test"
    }
    pub fn is_reported_agg(&self, a: &AggregateRow) -> bool {
        self.is_reported(&a.dataset, &a.split)
    }
}

/// The report's data from the given stage folders (evaluate and degradation stages).
pub fn build(inputs: &[PathBuf]) -> Result<rep::ReportData> {
    let folders = inputs::lineage(inputs)?;
    let first = folders
        .first()
        .context("a report needs at least one input stage")?;
    let pipeline = first.manifest.pipeline.clone();
    let seed = first.manifest.provenance.seed;
    let (evaluated, degraded) = inputs::tables(&folders, inputs)?;
    if evaluated.selection.is_empty() && degraded.aggregates.is_empty() {
        bail!("the report's inputs hold no evaluate or degradation results");
    }
    let reported = Reported::new(&evaluated.aggregates);
    let (curves, heatmap) = plots::curves(&evaluated, &reported);
    let (degradation, pareto_points) = damage::degradation(&evaluated, &degraded, &reported);
    let (training, costs) = finetune::training_and_costs(&folders)?;
    Ok(rep::ReportData {
        title: format!("steerbench report: {pipeline}"),
        provenance: provenance::provenance(&folders),
        setup: effects::setup(&evaluated),
        main: effects::main_rows(&evaluated),
        baselines: effects::baselines(&evaluated, &reported, seed),
        degradation,
        letter_bias: effects::letter_bias(&evaluated, &reported),
        icl: effects::icl_rows(&evaluated),
        generations: generations::examples(&evaluated, 3),
        generation_quality: generations::quality(&evaluated),
        turns: turns::points(&evaluated, &reported),
        curves,
        heatmap,
        slopes: plots::slopes(&evaluated),
        pareto: rep::Pareto {
            effect_label: "propensity effect (test)".into(),
            degradation_label: "KL from unsteered (nats)".into(),
            points: pareto_points,
        },
        cautions: damage::cautions(&degraded),
        reproduce: vec![
            format!("steerbench run pipelines/{pipeline}.yaml"),
            format!("steerbench report runs/{pipeline}"),
        ],
        behaviours: effects::behaviours(&evaluated, &degraded, &reported),
        training,
        costs,
    })
}
