//! The statistics of the stage layer as pure functions over typed rows: aggregation
//! over inputs, per-input derived scores (steerability, relative likelihood), paired
//! effects, and the directional selection with its controls. No I/O and no model:
//! every function here is unit-tested on hand-computed rows.

pub mod aggregate;
pub mod derive;
pub mod index;
pub mod paired;
pub mod select;
pub mod turns;

pub use aggregate::aggregate;
pub use derive::derive_scores;
pub use index::{mult_key, ScoreIndex, SettingKey};
pub use paired::{paired_effect, PairedEffect};
pub use select::{select, Selected};
pub use turns::turn_table;

use steerbench_steering::metrics::stats::BootstrapConfig;

/// Bootstrap settings of every CI in the tables: 1000 resamples, 95%, the run's seed.
pub fn bootstrap(seed: u64) -> BootstrapConfig {
    BootstrapConfig {
        resamples: 1000,
        level: 0.95,
        seed,
    }
}
