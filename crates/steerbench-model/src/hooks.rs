//! Hook sites: read (capture) or write (interventions) activations inside the forward.
//!
//! Writes select token positions on the UNPADDED sequence, so left padding never shifts
//! where steering lands. Each write gathers the selected rows of the flattened activation,
//! computes their new value, and scatters the difference back (`index_add`): one code
//! path for every intervention, with no per-token tensor ops.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::error::{ModelError, Result};
use crate::lora::Adapter;

/// Where in a block an activation is read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// Residual stream entering the block (= transformers' `hidden_states[layer]`).
    ResidPre,
    /// Residual stream after the attention residual add. For post-norm families (Gemma
    /// 2/3) the added branch is the post-normed attention output, and this is the input of
    /// the MLP's pre-norm.
    ResidMid,
    /// Residual stream leaving the block (before the next block's `ResidPre` hooks).
    ResidPost,
    /// Attention output after the output projection (and the post-attention norm, in
    /// Gemma 2/3), before the residual add: exactly what is added to the residual.
    AttnOut,
    /// MLP output (after the post-feed-forward norm, in Gemma 2/3) before the residual
    /// add: exactly what is added to the residual.
    MlpOut,
    /// Per-head attention outputs before the output projection: (b, t, n_heads, head_dim).
    HeadOut,
}

/// A site in a given block (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookPoint {
    pub layer: usize,
    pub site: Site,
}

impl HookPoint {
    pub fn new(layer: usize, site: Site) -> Self {
        Self { layer, site }
    }
}

/// Token positions, counted on the unpadded sequence `tokens` of a [`crate::Sequence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Positions {
    All,
    /// `i < prompt_len`.
    Prompt,
    /// `i >= prompt_len` (completion tokens, or tokens produced by `generate`).
    Generated,
    /// The last token of the sequence. In `generate` this is the last PROMPT token, so a
    /// token's steering never depends on how far generation has gone (cache-independent).
    Last,
    /// Explicit indices; those beyond the sequence are ignored.
    Indices(Vec<usize>),
}

/// A function applied to the selected rows: (n, d) -> (n, d).
pub type MapFn = Arc<dyn Fn(&Tensor) -> candle_core::Result<Tensor> + Send + Sync>;

/// What a write does to each selected activation row `h` (last dimension `d`; at
/// `Site::HeadOut` rows are the flattened heads, `d = n_heads * head_dim`).
#[derive(Clone)]
pub enum Intervention {
    /// `h + alpha * v`, `v` of shape (d) or (b, d) (one vector per batch row).
    Add { vector: Tensor, alpha: f32 },
    /// `h - (h·û)û`.
    Ablate { direction: Tensor },
    /// `W h + b`, `W` (d, d), `b` (d).
    Affine { matrix: Tensor, bias: Tensor },
    /// Set `h·û` to `value`.
    Clamp { direction: Tensor, value: f32 },
    /// `h <- f(h)`.
    Map(MapFn),
    /// Replace one head's output with `value` ((head_dim) or (b, head_dim)); HeadOut only.
    PatchHead { head: usize, value: Tensor },
}

impl std::fmt::Debug for Intervention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Intervention::Add { vector, alpha } => {
                write!(f, "Add({:?}, alpha={alpha})", vector.dims())
            }
            Intervention::Ablate { direction } => write!(f, "Ablate({:?})", direction.dims()),
            Intervention::Affine { matrix, .. } => write!(f, "Affine({:?})", matrix.dims()),
            Intervention::Clamp { direction, value } => {
                write!(f, "Clamp({:?}, {value})", direction.dims())
            }
            Intervention::Map(_) => write!(f, "Map(..)"),
            Intervention::PatchHead { head, value } => {
                write!(f, "PatchHead({head}, {:?})", value.dims())
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Write {
    at: HookPoint,
    what: Intervention,
    positions: Positions,
}

/// The captures and writes of one forward pass.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Registered captures; chunks are appended along the time axis (chunked prefill).
    captures: Vec<(HookPoint, Vec<Tensor>)>,
    writes: Vec<Write>,
    /// A LoRA adapter applied inside the blocks, and its multiplier.
    adapter: Option<(Arc<Adapter>, f32)>,
}

impl Hooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply `adapter`'s deltas, scaled by `multiplier` (0: the base model), in every block
    /// it adapts, at every position, during the next forwards with these hooks.
    pub fn set_adapter(&mut self, adapter: Arc<Adapter>, multiplier: f32) {
        self.adapter = Some((adapter, multiplier));
    }

    pub fn adapter(&self) -> Option<&(Arc<Adapter>, f32)> {
        self.adapter.as_ref()
    }

    /// Record the activation at `at` (after any writes there) during the next forward.
    pub fn capture(&mut self, at: HookPoint) {
        if !self.captures.iter().any(|(p, _)| *p == at) {
            self.captures.push((at, Vec::new()));
        }
    }

    /// Apply `what` at `at` on `positions`. Several writes at one site run in order.
    pub fn write(&mut self, at: HookPoint, what: Intervention, positions: Positions) {
        self.writes.push(Write {
            at,
            what,
            positions,
        });
    }

    /// The captured activation in padded layout (b, t, ..); the capture stays registered.
    pub fn take(&mut self, at: HookPoint) -> Option<Tensor> {
        let (_, chunks) = self.captures.iter_mut().find(|(p, _)| *p == at)?;
        let chunks = std::mem::take(chunks);
        match chunks.len() {
            0 => None,
            1 => chunks.into_iter().next(),
            _ => Tensor::cat(&chunks, 1).ok(),
        }
    }

    /// Drop all writes (keeps captures registered).
    pub fn clear_writes(&mut self) {
        self.writes.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.captures.is_empty() && self.writes.is_empty() && self.adapter.is_none()
    }

    /// The same writes (and adapter) without captures (generation does not record
    /// activations).
    pub(crate) fn writes_only(&self) -> Hooks {
        Hooks {
            captures: Vec::new(),
            writes: self.writes.clone(),
            adapter: self.adapter.clone(),
        }
    }

    /// Drop stale captured chunks before a new forward.
    pub(crate) fn reset_captures(&mut self) {
        for (_, c) in &mut self.captures {
            c.clear();
        }
    }

    /// Whether a capture is registered at `layer` at a site past the block's input.
    pub(crate) fn captures_past_input(&self, layer: usize) -> bool {
        self.captures
            .iter()
            .any(|(p, _)| p.layer == layer && p.site != Site::ResidPre)
    }

    /// Highest layer any hook touches (to validate against the model).
    pub(crate) fn max_layer(&self) -> Option<usize> {
        self.captures
            .iter()
            .map(|(p, _)| p.layer)
            .chain(self.writes.iter().map(|w| w.at.layer))
            .max()
    }

    /// Run the writes registered at `at` on `xs` (b, t, ..) and then the capture.
    pub(crate) fn apply(&mut self, at: HookPoint, xs: Tensor, frame: &Frame) -> Result<Tensor> {
        let mut xs = xs;
        for w in self.writes.iter().filter(|w| w.at == at) {
            xs = apply_write(&xs, w, frame)?;
        }
        if let Some((_, chunks)) = self.captures.iter_mut().find(|(p, _)| *p == at) {
            chunks.push(xs.clone());
        }
        Ok(xs)
    }
}

/// Padding and position bookkeeping of the chunk being run: padded positions
/// `[start, start + t)` of a batch whose rows are laid out as `[shared][pad][own tokens]`:
/// a token prefix of `shared` positions common to every row (held in a KV cache, see
/// [`crate::SharedPrefix`]; 0 without one), the row's left padding, then its own tokens.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub pad: Vec<usize>,
    /// Unpadded length of each row as of this chunk's end (shared prefix included).
    pub lens: Vec<usize>,
    pub prompt_lens: Vec<usize>,
    /// Unpadded index that `Positions::Last` names, per row (`usize::MAX`: none).
    pub last: Vec<usize>,
    pub shared: usize,
    pub start: usize,
    pub t: usize,
}

impl Frame {
    /// Unpadded index of padded position `j` of row `r`, `None` at padding.
    pub(crate) fn unpadded(&self, r: usize, j: usize) -> Option<usize> {
        if j < self.shared {
            Some(j)
        } else if j < self.shared + self.pad[r] {
            None
        } else {
            Some(j - self.pad[r])
        }
    }

    /// Flat row indices (into (b*t)) and batch rows of the positions `sel` selects.
    fn select(&self, sel: &Positions) -> (Vec<u32>, Vec<u32>) {
        let mut flat = Vec::new();
        let mut rows = Vec::new();
        for r in 0..self.pad.len() {
            let picked = |u: usize| -> bool {
                match sel {
                    Positions::All => true,
                    Positions::Prompt => u < self.prompt_lens[r],
                    Positions::Generated => u >= self.prompt_lens[r],
                    Positions::Last => u == self.last[r],
                    Positions::Indices(ix) => ix.contains(&u),
                }
            };
            for j in self.start..self.start + self.t {
                match self.unpadded(r, j) {
                    Some(u) if u < self.lens[r] && picked(u) => {
                        flat.push((r * self.t + j - self.start) as u32);
                        rows.push(r as u32);
                    }
                    _ => {}
                }
            }
        }
        (flat, rows)
    }
}

fn apply_write(xs: &Tensor, w: &Write, frame: &Frame) -> Result<Tensor> {
    let (flat, rows) = frame.select(&w.positions);
    if flat.is_empty() {
        return Ok(xs.clone());
    }
    let dims = xs.dims().to_vec();
    let (b, t) = (dims[0], dims[1]);
    let d: usize = dims[2..].iter().product();
    let dev = xs.device();
    let n = flat.len();
    let idx = Tensor::from_vec(flat, n, dev)?;
    let flat_xs = xs.reshape((b * t, d))?;
    let h = flat_xs.index_select(&idx, 0)?;
    let at = w.at;
    let new = match &w.what {
        Intervention::Add { vector, alpha } => {
            let v = per_row(vector, &rows, b, d, dev, at, "Add vector")?;
            (h.clone() + (v * *alpha as f64)?)?
        }
        Intervention::Ablate { direction } => {
            let u = unit(direction, d, dev, at)?;
            let proj = h.matmul(&u.unsqueeze(1)?)?; // (n, 1)
            (h.clone() - proj.broadcast_mul(&u.unsqueeze(0)?)?)?
        }
        Intervention::Clamp { direction, value } => {
            let u = unit(direction, d, dev, at)?;
            let proj = h.matmul(&u.unsqueeze(1)?)?;
            let delta = (proj.affine(-1.0, *value as f64))?;
            (h.clone() + delta.broadcast_mul(&u.unsqueeze(0)?)?)?
        }
        Intervention::Affine { matrix, bias } => {
            if matrix.dims() != [d, d] || bias.dims() != [d] {
                return Err(ModelError::Input(format!(
                    "Affine at {at:?}: expected matrix ({d}, {d}) and bias ({d}), found {:?} and {:?}",
                    matrix.dims(),
                    bias.dims()
                )));
            }
            let m = matrix.to_dtype(DType::F32)?.to_device(dev)?;
            let bias = bias.to_dtype(DType::F32)?.to_device(dev)?;
            h.matmul(&m.t()?)?.broadcast_add(&bias)?
        }
        Intervention::Map(f) => {
            let out = f(&h)?;
            if out.dims() != h.dims() {
                return Err(ModelError::Input(format!(
                    "Map at {at:?} returned shape {:?}, expected {:?}",
                    out.dims(),
                    h.dims()
                )));
            }
            out
        }
        Intervention::PatchHead { head, value } => {
            if at.site != Site::HeadOut || dims.len() != 4 {
                return Err(ModelError::Input(format!(
                    "PatchHead is only valid at Site::HeadOut, not {at:?}"
                )));
            }
            let (nh, hd) = (dims[2], dims[3]);
            if *head >= nh {
                return Err(ModelError::Input(format!(
                    "PatchHead head {head} out of range (model has {nh} heads)"
                )));
            }
            let v = per_row(value, &rows, b, hd, dev, at, "PatchHead value")?;
            let mut parts = Vec::with_capacity(3);
            if *head > 0 {
                parts.push(h.narrow(1, 0, head * hd)?);
            }
            parts.push(v);
            if *head + 1 < nh {
                parts.push(h.narrow(1, (head + 1) * hd, (nh - head - 1) * hd)?);
            }
            Tensor::cat(&parts, 1)?
        }
    };
    let delta = (new - h)?;
    Ok(flat_xs.index_add(&idx, &delta, 0)?.reshape(dims)?)
}

/// A (d) vector broadcast to the n selected rows, or a (b, d) one gathered per batch row.
fn per_row(
    v: &Tensor,
    rows: &[u32],
    b: usize,
    d: usize,
    dev: &Device,
    at: HookPoint,
    what: &str,
) -> Result<Tensor> {
    let v = v.to_dtype(DType::F32)?.to_device(dev)?;
    match v.dims() {
        [x] if *x == d => Ok(v
            .unsqueeze(0)?
            .broadcast_as((rows.len(), d))?
            .contiguous()?),
        [x, y] if *x == b && *y == d => {
            let ri = Tensor::from_vec(rows.to_vec(), rows.len(), dev)?;
            Ok(v.index_select(&ri, 0)?)
        }
        other => Err(ModelError::Input(format!(
            "{what} at {at:?}: expected shape ({d}) or ({b}, {d}), found {other:?}"
        ))),
    }
}

fn unit(dir: &Tensor, d: usize, dev: &Device, at: HookPoint) -> Result<Tensor> {
    if dir.dims() != [d] {
        return Err(ModelError::Input(format!(
            "direction at {at:?}: expected shape ({d}), found {:?}",
            dir.dims()
        )));
    }
    let dir = dir.to_dtype(DType::F32)?.to_device(dev)?;
    let norm = dir.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    if !(norm > 0.0 && norm.is_finite()) {
        return Err(ModelError::Input(format!(
            "direction at {at:?} has zero or non-finite norm"
        )));
    }
    Ok((dir / norm as f64)?)
}
