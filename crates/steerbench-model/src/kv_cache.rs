//! Per-layer key/value cache for incremental decoding and chunked prefill.

use candle_core::Tensor;

use crate::error::Result;

/// Keys and values per layer, (b, len, n_kv_heads, head_dim), in padded batch layout.
///
/// Each layer's buffer is allocated with spare room and filled in place, so a decode
/// step copies only its new position, not the whole cache; when full, it doubles.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<Slot>>,
}

#[derive(Debug, Clone)]
struct Slot {
    /// (b, capacity, n_kv_heads, head_dim), contiguous; positions `len..` are unused.
    k: Tensor,
    v: Tensor,
    len: usize,
}

/// Room reserved beyond the first chunk (a typical generation length).
const MIN_SPARE: usize = 64;

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
        }
    }

    /// Cached length (positions) of layer `layer`.
    pub fn len(&self, layer: usize) -> usize {
        self.layers
            .get(layer)
            .and_then(|l| l.as_ref())
            .map(|s| s.len)
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.layers.iter().all(|l| l.is_none())
    }

    /// Append this chunk's k, v (b, t, n_kv_heads, head_dim) and return views of all
    /// cached positions (b, len, n_kv_heads, head_dim).
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor,
        v: Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let t = k.dim(1)?;
        let slot = match self.layers[layer].take() {
            Some(s) if s.len + t <= s.k.dim(1)? => s,
            old => {
                let used = old.as_ref().map_or(0, |s| s.len);
                let cap = (2 * (used + t)).max(used + t + MIN_SPARE);
                let grow = |x: &Tensor, prev: Option<&Tensor>| -> Result<Tensor> {
                    let (b, _, h, d) = x.dims4()?;
                    let buf = Tensor::zeros((b, cap, h, d), x.dtype(), x.device())?;
                    if let Some(p) = prev.filter(|_| used > 0) {
                        buf.slice_set(&p.narrow(1, 0, used)?.contiguous()?, 1, 0)?;
                    }
                    Ok(buf)
                };
                Slot {
                    k: grow(&k, old.as_ref().map(|s| &s.k))?,
                    v: grow(&v, old.as_ref().map(|s| &s.v))?,
                    len: used,
                }
            }
        };
        slot.k.slice_set(&k.contiguous()?, 1, slot.len)?;
        slot.v.slice_set(&v.contiguous()?, 1, slot.len)?;
        let len = slot.len + t;
        let out = (slot.k.narrow(1, 0, len)?, slot.v.narrow(1, 0, len)?);
        self.layers[layer] = Some(Slot { len, ..slot });
        Ok(out)
    }

    /// A cache for a new batch whose row r starts from this cache's row `rows[r]`, with
    /// room for `spare` more positions per layer.
    pub(crate) fn select_rows(&self, rows: &[usize], spare: usize) -> Result<KvCache> {
        let mut out = KvCache::new(self.layers.len());
        for (slot_out, slot) in out.layers.iter_mut().zip(&self.layers) {
            let Some(s) = slot else { continue };
            let ix = Tensor::from_vec(
                rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
                rows.len(),
                s.k.device(),
            )?;
            let pick = |x: &Tensor| -> Result<Tensor> {
                let (_, _, h, d) = x.dims4()?;
                let buf = Tensor::zeros((rows.len(), s.len + spare, h, d), x.dtype(), x.device())?;
                buf.slice_set(
                    &x.narrow(1, 0, s.len)?.contiguous()?.index_select(&ix, 0)?,
                    1,
                    0,
                )?;
                Ok(buf)
            };
            *slot_out = Some(Slot {
                k: pick(&s.k)?,
                v: pick(&s.v)?,
                len: s.len,
            });
        }
        Ok(out)
    }
}
