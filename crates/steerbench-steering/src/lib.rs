//! steerbench-steering: the pure math of activation steering — extraction
//! methods, interventions, metrics and statistics — plus control-vector
//! interop. No model, no Parquet: inputs are plain Rust values, so every
//! function is unit-tested on tiny synthetic data.
//!
//! # Data types
//! Activations at one layer are a row-major [`Matrix`] (`rows × cols`, one
//! activation per row; build with [`Matrix::new`] or [`Matrix::from_rows`]).
//! Paired methods take `pos` and `neg` with row i of each forming pair i.
//! Every bad input returns a [`SteeringError`]; nothing panics on user data.
//!
//! # Extraction methods ([`methods`])
//! | method | function | result |
//! |---|---|---|
//! | `caa` | [`caa(pos, neg)`](methods::caa::caa) | mean of pos − neg |
//! | `pca` | [`pca_diff(pos, neg)`](methods::pca::pca_diff) | first axis of the (uncentred) differences, positives project higher |
//! | `pca_center` | [`pca_center(pos, neg)`](methods::pca::pca_center) | first axis of pair-centred activations |
//! | (repeng exact) | [`pca_diff_centered(pos, neg)`](methods::pca::pca_diff_centered) | sklearn-style centred PCA of differences |
//! | `probe` | [`probe(x, labels, &ProbeConfig)`](methods::probe::probe), [`probe_pairs`](methods::probe::probe_pairs) | L2 logistic regression (Newton), unit weight + train accuracy |
//! | `icv` | [`icv(&[diffs per layer])`](methods::icv::icv), [`icv_apply(h, v, λ)`](methods::icv::icv_apply) | first PC per layer; h + λv rescaled to ‖h‖ |
//! | `function_vector` | [`rank_heads(effects, heads)`](methods::function_vector::rank_heads), [`project_head(o_proj, head, output)`](methods::function_vector::project_head), [`function_vector(ranking, k, contributions)`](methods::function_vector::function_vector) | Σ top-K heads' o_proj-projected mean outputs |
//! | `ablation` | [`ablation_direction`](methods::ablation::ablation_direction), [`ablate(h, u)`](methods::ablation::ablate) | h − (h·û)û |
//! | `affine` | [`mean_shift_projection(pos, neg, k)`](methods::affine::mean_shift_projection), [`gaussian_transport(pos, neg, Shrinkage)`](methods::affine::gaussian_transport) | [`AffineMap`](methods::affine::AffineMap) h ↦ Wh + b, `.interpolate(α)` |
//! | `mlp` | [`train_mlp(pos, neg, &MlpConfig)`](methods::mlp::train_mlp) | [`MlpSteer`](methods::mlp::MlpSteer): `apply_rows(m, α)`, `apply_tensor(&Tensor, α)`, per-epoch `losses` |
//! | `random` | [`random_direction(d, norm, seed)`](methods::random::random_direction) | seeded Gaussian direction of the given norm |
//! | `shuffled` | [`shuffled_caa(pos, neg, seed)`](methods::caa::shuffled_caa) | label-permutation null: pooled activations split at random, CAA direction projected out, CAA norm |
//!
//! Scaling: [`normalize(v, Normalize)`](methods::normalize::normalize) →
//! (vector, original norm), with [`Normalize::ResidNorm`](methods::normalize::Normalize)
//! fed by [`resid_norm_stat`](methods::normalize::resid_norm_stat) (median token norm:
//! the first token's massive activations would dominate a mean).
//!
//! # Metrics and statistics ([`metrics`])
//! [`ab_probability`](metrics::behaviour::ab_probability),
//! [`propensity`](metrics::behaviour::propensity) /
//! [`propensity_masked`](metrics::behaviour::propensity_masked),
//! [`open_ended_likelihood`](metrics::behaviour::open_ended_likelihood),
//! [`icl_accuracy`](metrics::behaviour::icl_accuracy),
//! [`mc_accuracy`](metrics::behaviour::mc_accuracy),
//! [`steerability`](metrics::steerability::steerability) /
//! [`fit_line`](metrics::steerability::fit_line),
//! [`perplexity`](metrics::lm::perplexity),
//! [`kl_divergence`](metrics::lm::kl_divergence),
//! [`distinct_n`](metrics::lm::distinct_n),
//! [`bootstrap_mean_ci`](metrics::stats::bootstrap_mean_ci) /
//! [`bootstrap_ci`](metrics::stats::bootstrap_ci),
//! [`mean_std`](metrics::stats::mean_std),
//! [`effect_size`](metrics::stats::effect_size),
//! [`select_best`](metrics::stats::select_best).
//!
//! # Interop ([`interop`])
//! [`ControlVector`] reads/writes llama.cpp /
//! repeng GGUF control vectors; `direction.k` is added to the output of
//! block k, i.e. steerbench's `ResidPost(k)` (see the module doc for the
//! evidence). [`vectors_to_safetensors`](interop::safetensors::vectors_to_safetensors)
//! writes `<method>.layer<i>` tensors with the model fingerprint;
//! [`ModelFingerprint::check_compatible`](interop::fingerprint::ModelFingerprint::check_compatible)
//! refuses vectors made for another model.
//!
//! # Example
//! ```
//! use std::collections::BTreeMap;
//! use steerbench_steering::methods::{caa::caa, normalize::{normalize, Normalize}};
//! use steerbench_steering::{ControlVector, Matrix};
//!
//! let pos = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, 2.0]])?;
//! let neg = Matrix::from_rows(&[vec![0.0, 2.0], vec![1.0, 2.0]])?;
//! let v = caa(&pos, &neg)?;                               // [1.5, 0.0]
//! let (unit_v, raw_norm) = normalize(&v, Normalize::Unit)?;
//! assert_eq!((unit_v.clone(), raw_norm), (vec![1.0, 0.0], 1.5));
//! // Export for llama.cpp: added after block 6 (steerbench ResidPost(6)).
//! let cv = ControlVector { model_hint: "llama".into(), directions: BTreeMap::from([(6, unit_v)]) };
//! let mut buf = std::io::Cursor::new(Vec::new());
//! cv.write_to(&mut buf)?;
//! buf.set_position(0);
//! assert_eq!(ControlVector::read_from(&mut buf)?, cv);
//! # Ok::<(), steerbench_steering::SteeringError>(())
//! ```

pub mod error;
pub mod interop;
pub(crate) mod linalg;
pub mod matrix;
pub mod methods;
pub mod metrics;

pub use error::{Result, SteeringError};
pub use interop::fingerprint::ModelFingerprint;
pub use interop::gguf::ControlVector;
pub use matrix::{cosine, dot, norm, unit, Matrix};
