//! Per-input scores indexed by setting, for lookups by (dataset, split, condition,
//! layer, multiplier, position, metric).

use std::collections::BTreeMap;

use crate::tables::{Condition, ScoreMetric, ScoreRow};

/// Multiplier as a map key: its bits, with −0 folded onto 0.
pub fn mult_key(x: f64) -> u64 {
    if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

/// Which measurements: every column of a score row except the input and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SettingKey {
    /// The dataset name without split.
    pub dataset: String,
    pub split: String,
    pub method: Condition,
    pub layer: Option<usize>,
    pub multiplier: u64,
    pub position: String,
    pub metric: ScoreMetric,
}

impl SettingKey {
    pub fn of(s: &ScoreRow) -> SettingKey {
        SettingKey {
            dataset: base_name(&s.dataset).to_string(),
            split: s.split.clone(),
            method: s.method,
            layer: s.layer,
            multiplier: mult_key(s.multiplier),
            position: s.position.clone(),
            metric: s.metric,
        }
    }

    pub fn multiplier(&self) -> f64 {
        f64::from_bits(self.multiplier)
    }
}

/// `name.split` → `name`.
pub fn base_name(dataset: &str) -> &str {
    dataset.split('.').next().unwrap_or(dataset)
}

/// Setting → input id → value (finite values only: a NaN measures nothing).
#[derive(Debug, Default)]
pub struct ScoreIndex {
    map: BTreeMap<SettingKey, BTreeMap<String, f64>>,
}

impl ScoreIndex {
    pub fn new(scores: &[ScoreRow]) -> ScoreIndex {
        let mut map: BTreeMap<SettingKey, BTreeMap<String, f64>> = BTreeMap::new();
        for s in scores {
            let values = map.entry(SettingKey::of(s)).or_default();
            if s.value.is_finite() {
                values.insert(s.example_id.clone(), s.value);
            }
        }
        ScoreIndex { map }
    }

    pub fn get(&self, key: &SettingKey) -> Option<&BTreeMap<String, f64>> {
        self.map.get(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &SettingKey> {
        self.map.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SettingKey, &BTreeMap<String, f64>)> {
        self.map.iter()
    }

    /// The unsteered values of `metric` on one dataset split.
    pub fn unsteered(
        &self,
        dataset: &str,
        split: &str,
        metric: ScoreMetric,
    ) -> Option<&BTreeMap<String, f64>> {
        self.get(&SettingKey {
            dataset: dataset.to_string(),
            split: split.to_string(),
            method: Condition::UNSTEERED,
            layer: None,
            multiplier: 0,
            position: "none".into(),
            metric,
        })
    }
}
