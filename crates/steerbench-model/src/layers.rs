//! Building blocks shared by the architecture files: shape-checked weight lookup,
//! linear layers in both storage layouts, norms, rotary frequencies.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{CpuStorage, DType, Layout, Shape, Tensor, D};
use candle_nn::VarBuilder;

use crate::config::{RopeConfig, RopeScaling};
use crate::error::{ModelError, Result};

/// Fetch `name` under `vb`'s prefix, checking its shape; errors name the full tensor.
pub(crate) fn get(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor> {
    get_as(vb, shape, name, DType::F32)
}

/// [`get`] held in `dtype`.
pub(crate) fn get_as(vb: &VarBuilder, shape: &[usize], name: &str, dtype: DType) -> Result<Tensor> {
    let full = full_name(vb, name);
    if !vb.contains_tensor(name) {
        return Err(ModelError::MissingTensor(full));
    }
    let t = vb.get_unchecked_dtype(name, dtype)?;
    if t.dims() != shape {
        return Err(ModelError::Shape {
            name: full,
            expected: shape.to_vec(),
            found: t.dims().to_vec(),
        });
    }
    Ok(t)
}

pub(crate) fn full_name(vb: &VarBuilder, name: &str) -> String {
    let p = vb.prefix();
    if p.is_empty() {
        name.to_string()
    } else {
        format!("{p}.{name}")
    }
}

/// Where an architecture file reads its weights: tensors by Hugging Face name, plus,
/// when a model is loaded quantized, quantized matrices by the same names (used for the
/// linear layers and the LM head). Matrices (linear weights, embedding tables) are held in
/// `dtype` ([`Src::matrix`]); vectors (norm weights, biases) always in f32 ([`get`]).
#[derive(Clone)]
pub(crate) struct Src<'a> {
    pub vb: VarBuilder<'a>,
    quant: Option<&'a QuantWeights>,
    dtype: DType,
}

/// Quantized matrices by Hugging Face tensor name.
pub type QuantWeights = HashMap<String, Arc<QTensor>>;

impl<'a> Src<'a> {
    pub(crate) fn new(vb: VarBuilder<'a>, quant: Option<&'a QuantWeights>, dtype: DType) -> Self {
        Self { vb, quant, dtype }
    }

    pub(crate) fn pp(&self, s: impl ToString) -> Self {
        Self {
            vb: self.vb.pp(s),
            quant: self.quant,
            dtype: self.dtype,
        }
    }

    /// The matrix `name` (under this prefix), shape-checked, in the model's weight dtype.
    pub(crate) fn matrix(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        get_as(&self.vb, shape, name, self.dtype)
    }

    /// The quantized matrix `name` (under this prefix), shape-checked, as 8-bit blocks, if
    /// there is one (and its rows split into whole blocks).
    fn quantized(&self, name: &str, shape: &[usize]) -> Result<Option<Q8Matrix>> {
        let full = full_name(&self.vb, name);
        let Some(q) = self.quant.and_then(|m| m.get(&full)) else {
            return Ok(None);
        };
        if q.shape().dims() != shape {
            return Err(ModelError::Shape {
                name: full,
                expected: shape.to_vec(),
                found: q.shape().dims().to_vec(),
            });
        }
        if shape[1] % Q8_BLOCK != 0 || !q.device().is_cpu() {
            return Ok(None);
        }
        Ok(Some(Q8Matrix::from_f32(&q.dequantize(&q.device())?)?))
    }

    /// Whether `name` (under this prefix) is held quantized.
    fn has_quantized(&self, name: &str) -> bool {
        let full = full_name(&self.vb, name);
        self.quant.is_some_and(|m| m.contains_key(&full))
    }
}

/// A linear layer's weight: f32, or 8-bit blocks.
#[derive(Debug, Clone)]
enum Weight {
    /// (in, out): stored (out, in) (`nn.Linear`) and viewed transposed, or (in, out)
    /// (GPT-2 `Conv1D`); both multiply without a copy, since the matmul kernel takes strides.
    Dense(Tensor),
    /// (out, in) in 8-bit blocks.
    Quant(Q8Matrix),
}

/// (n, k) x (k, m) for a linear layer; `xs` f32, the weight `w` f32, bf16 or f16, the result
/// f32. On CPU it calls the gemm kernel directly: candle's matmul asks for the core count on
/// every call, which on Linux parses /proc/cpuinfo (tens of microseconds, ~200 times per
/// decoded token), and has no bf16 kernel (it widens both operands to f32 in new tensors).
///
/// Half-precision weights: the activations are never rounded. The weight is widened to f32
/// a block at a time inside the kernel (exact: every bf16/f16 value is an f32 value) and
/// multiplied by the f32 gemm, accumulating in f32. Decoding reads half the weight bytes
/// (it is memory bound); prefill is compute bound and runs the same f32 gemm as f32
/// weights, with the widening (k × 256 values per block, L2-resident) a small extra cost.
/// AVX512-BF16's dot products would round the activations to bf16 and are not used.
fn matmul(xs: &Tensor, w: &Tensor) -> Result<Tensor> {
    let ours = matches!(w.dtype(), DType::F32 | DType::BF16 | DType::F16);
    if xs.device().is_cpu() && xs.dtype() == DType::F32 && ours {
        // With backward: free unless `xs` is part of a graph (LoRA training).
        Ok(xs.apply_op2(w, CpuMatmul)?)
    } else if w.dtype() != xs.dtype() {
        // Other devices: candle's matmul in the weight's dtype, the result back in f32.
        Ok(xs.to_dtype(w.dtype())?.matmul(w)?.to_dtype(xs.dtype())?)
    } else {
        Ok(xs.matmul(w)?)
    }
}

/// 2-D matmul of f32 activations on strided operands (weights f32, bf16 or f16), straight
/// into gemm.
struct CpuMatmul;

impl candle_core::CustomOp2 for CpuMatmul {
    fn name(&self) -> &'static str {
        "steerbench-matmul"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(l) = ls else {
            candle_core::bail!("matmul: f32 activations expected")
        };
        let ([n, k], [k2, m]) = (ll.dims(), rl.dims()) else {
            candle_core::bail!(
                "matmul: 2-D operands expected, found {:?} and {:?}",
                ll.dims(),
                rl.dims()
            )
        };
        let (n, k, m) = (*n, *k, *m);
        if *k2 != k {
            candle_core::bail!(
                "matmul: inner dims differ: {:?} x {:?}",
                ll.dims(),
                rl.dims()
            )
        }
        let rlen = match rs {
            CpuStorage::F32(r) => r.len(),
            CpuStorage::BF16(r) => r.len(),
            CpuStorage::F16(r) => r.len(),
            _ => candle_core::bail!("matmul: f32, bf16 or f16 weights expected"),
        };
        let (lst, rst) = (ll.stride(), rl.stride());
        let end =
            |off: usize, d: [usize; 2], st: &[usize]| off + (d[0] - 1) * st[0] + (d[1] - 1) * st[1];
        if n == 0 || k == 0 || m == 0 {
            return Ok((CpuStorage::F32(vec![0f32; n * m]), Shape::from((n, m))));
        }
        if end(ll.start_offset(), [n, k], lst) >= l.len()
            || end(rl.start_offset(), [k, m], rst) >= rlen
        {
            candle_core::bail!("matmul: operand view out of bounds")
        }
        let lhs = Lhs {
            l,
            off: ll.start_offset(),
            st: [lst[0], lst[1]],
        };
        let rhs = Rhs {
            off: rl.start_offset(),
            st: [rst[0], rst[1]],
        };
        let dst = match rs {
            CpuStorage::F32(r) => f32_matmul(&lhs, r, &rhs, n, k, m),
            CpuStorage::BF16(r) => half_matmul(&lhs, r, &rhs, n, k, m),
            CpuStorage::F16(r) => half_matmul(&lhs, r, &rhs, n, k, m),
            _ => unreachable!("checked above"),
        };
        Ok((CpuStorage::F32(dst), Shape::from((n, m))))
    }

    /// The gradient of the activations, `grad · wᵀ`, by the same kernel. The weight is
    /// frozen (a LoRA delta runs beside it): it gets a gradient only if it is itself part
    /// of a graph.
    fn bwd(
        &self,
        lhs: &Tensor,
        rhs: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dl = grad.contiguous()?.apply_op2_no_bwd(&rhs.t()?, &CpuMatmul)?;
        let dr = if rhs.track_op() {
            Some(
                lhs.t()?
                    .matmul(&grad.to_dtype(lhs.dtype())?)?
                    .to_dtype(rhs.dtype())?,
            )
        } else {
            None
        };
        Ok((Some(dl), dr))
    }
}

/// The activations (n, k) of a matmul: data, offset of element (0, 0), strides.
struct Lhs<'a> {
    l: &'a [f32],
    off: usize,
    st: [usize; 2],
}

impl Lhs<'_> {
    /// Rows as one contiguous (n, k) buffer.
    fn rows(&self, n: usize, k: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|r| {
                let o = self.off + r * self.st[0];
                (0..k).map(move |i| o + i * self.st[1])
            })
            .map(|i| self.l[i])
            .collect()
    }
}

/// Where the weight view (k, m) sits in its storage: offset of element (0, 0), strides.
struct Rhs {
    off: usize,
    st: [usize; 2],
}

/// One gemm: dst (rows, cols) with row stride `dst_rs` = lhs rows [r0, r0 + rows) times
/// rhs (k, cols) given by its pointer and strides.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block(
    dst: *mut f32,
    dst_rs: usize,
    lhs: &Lhs,
    r0: usize,
    rows: usize,
    k: usize,
    rhs: *const f32,
    rhs_st: [usize; 2],
    cols: usize,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        rows,
        cols,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs.l.as_ptr().add(lhs.off + r0 * lhs.st[0]),
        lhs.st[1] as isize,
        lhs.st[0] as isize,
        rhs,
        rhs_st[1] as isize,
        rhs_st[0] as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// Raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct DstPtr(*mut f32);
// SAFETY: each task writes only its own rows or columns of the output.
unsafe impl Send for DstPtr {}
unsafe impl Sync for DstPtr {}

fn f32_matmul(lhs: &Lhs, r: &[f32], rhs: &Rhs, n: usize, k: usize, m: usize) -> Vec<f32> {
    let ro = rhs.off;
    if n <= GEMV_MAX_ROWS && rhs.st == [1, k] && lhs.st[1] == 1 {
        // Few rows against a row-major (m, k) weight: memory bound, dot products.
        let x = lhs.rows(n, k);
        return dense_rows(&r[ro..ro + m * k], &x, n, k, m);
    }
    let mut dst = vec![0f32; n * m];
    let threads = rayon::current_num_threads();
    let rptr = r[ro..].as_ptr() as usize;
    // One gemm over rows [r0, r0 + rows) of the output.
    let run = |dst: &mut [f32], r0: usize, rows: usize, par: gemm::Parallelism| {
        // SAFETY: both views were checked to lie inside their slices; `dst` is the
        // (rows, m) block of output rows starting at r0, read from lhs rows r0...
        unsafe {
            gemm_block(
                dst.as_mut_ptr(),
                m,
                lhs,
                r0,
                rows,
                k,
                rptr as *const f32,
                rhs.st,
                m,
                par,
            )
        }
    };
    if threads > 1 && n >= threads * SPLIT_MIN_ROWS {
        // Many rows: each thread multiplies its own block of rows, one gemm each,
        // with no synchronisation inside the gemm.
        use rayon::prelude::*;
        let per = n.div_ceil(threads);
        dst.par_chunks_mut(per * m)
            .enumerate()
            .for_each(|(c, d)| run(d, c * per, d.len() / m, gemm::Parallelism::None));
    } else if threads > 1 {
        run(&mut dst, 0, n, gemm::Parallelism::Rayon(threads));
    } else {
        run(&mut dst, 0, n, gemm::Parallelism::None);
    }
    dst
}

/// A half-precision weight element, widened to f32 exactly.
trait HalfWeight: Copy + Send + Sync + 'static {
    fn widen(src: &[Self], dst: &mut [f32]);
    fn widen_one(self) -> f32;
    /// Whether [`HalfWeight::rows`] is a fused kernel.
    const FUSED: bool = false;
    /// dst[o * n + r] = w[o, :] · x[r, :] for the weight rows in `w` (row-major, k wide),
    /// widening as it reads (only called when `FUSED`; otherwise a row is widened into a
    /// buffer, then [`f32_rows`]).
    fn rows(_w: &[Self], _x: &[f32], _k: usize, _n: usize, _dst: &mut [f32]) {
        unreachable!("no fused kernel")
    }
}

impl HalfWeight for half::bf16 {
    fn widen(src: &[Self], dst: &mut [f32]) {
        // A bf16 is the top half of an f32: a shift, which the compiler vectorizes.
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32::from_bits((s.to_bits() as u32) << 16);
        }
    }
    fn widen_one(self) -> f32 {
        self.to_f32()
    }
    const FUSED: bool = true;
    fn rows(w: &[Self], x: &[f32], k: usize, n: usize, dst: &mut [f32]) {
        // SAFETY: bf16 is a transparent u16.
        let w: &[u16] = unsafe { std::slice::from_raw_parts(w.as_ptr().cast(), w.len()) };
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                // SAFETY: the CPU has the features this copy is compiled for.
                unsafe { bf16_rows_avx512(w, x, k, n, dst) };
                return;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                unsafe { bf16_rows_avx2(w, x, k, n, dst) };
                return;
            }
        }
        bf16_rows_generic(w, x, k, n, dst)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn bf16_rows_avx512(w: &[u16], x: &[f32], k: usize, n: usize, dst: &mut [f32]) {
    bf16_rows_generic(w, x, k, n, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bf16_rows_avx2(w: &[u16], x: &[f32], k: usize, n: usize, dst: &mut [f32]) {
    bf16_rows_generic(w, x, k, n, dst)
}

/// [`f32_rows_generic`] on bf16 weights (as raw bits), each widened (a shift) as it is
/// read: decoding reads half the bytes of f32 weights and writes nothing in between.
#[inline(always)]
fn bf16_rows_generic(w: &[u16], x: &[f32], k: usize, n: usize, dst: &mut [f32]) {
    let widen = |b: u16| f32::from_bits((b as u32) << 16);
    for (o, wrow) in w.chunks_exact(k).enumerate() {
        for r in 0..n {
            let xrow = &x[r * k..(r + 1) * k];
            let mut acc = [0f32; 16];
            let (wc, xc) = (wrow.chunks_exact(16), xrow.chunks_exact(16));
            let (wt, xt) = (wc.remainder(), xc.remainder());
            for (wb, xb) in wc.zip(xc) {
                for l in 0..16 {
                    acc[l] = widen(wb[l]).mul_add(xb[l], acc[l]);
                }
            }
            let tail: f32 = wt.iter().zip(xt).map(|(a, b)| widen(*a) * b).sum();
            dst[o * n + r] = acc.iter().sum::<f32>() + tail;
        }
    }
}

impl HalfWeight for half::f16 {
    fn widen(src: &[Self], dst: &mut [f32]) {
        // F16C instructions when the CPU has them (detected once per call).
        use half::slice::HalfFloatSliceExt;
        src.convert_to_f32_slice(dst)
    }
    fn widen_one(self) -> f32 {
        self.to_f32()
    }
}

/// Output columns widened per block in [`half_matmul`]: k × 256 f32 values stay in L2
/// for the hidden sizes of small models.
const HALF_COLS: usize = 256;

thread_local! {
    /// Per-thread scratch for widened weight blocks (reused across calls, so prefill does
    /// not fault in fresh pages for every matmul).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `f(buf)` with a scratch buffer of `len` f32 values: this thread's, or a fresh one when it
/// is already in use further up the stack.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![0f32; len]),
    })
}

/// Columns [c0, c0 + cols) of the weight view (k, m) widened into `buf` as (cols, k)
/// row-major: `buf[c * k + i] = w[i, c0 + c]`.
fn widen_cols<T: HalfWeight>(
    r: &[T],
    rhs: &Rhs,
    k: usize,
    c0: usize,
    cols: usize,
    buf: &mut [f32],
) {
    for (c, dst) in buf.chunks_exact_mut(k).take(cols).enumerate() {
        let base = rhs.off + (c0 + c) * rhs.st[1];
        if rhs.st[0] == 1 {
            T::widen(&r[base..base + k], dst);
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = r[base + i * rhs.st[0]].widen_one();
            }
        }
    }
}

/// [`f32_matmul`] for a bf16 / f16 weight (see [`matmul`]).
fn half_matmul<T: HalfWeight>(
    lhs: &Lhs,
    r: &[T],
    rhs: &Rhs,
    n: usize,
    k: usize,
    m: usize,
) -> Vec<f32> {
    use rayon::prelude::*;
    if n <= GEMV_MAX_ROWS && rhs.st[0] == 1 {
        // Few rows: memory bound, dot products. bf16 weight rows are widened as they are
        // read (fused kernel); f16 rows (and strided views) one at a time into an L1
        // buffer, then dotted with the n input rows.
        let x = lhs.rows(n, k);
        if T::FUSED && rhs.st[1] == k {
            // Row-major (m, k) weight rows: widened as they are read.
            let w = &r[rhs.off..rhs.off + m * k];
            return by_output_rows(m, n, 64, |o0, dst| {
                let rows = dst.len() / n;
                T::rows(&w[o0 * k..(o0 + rows) * k], &x, k, n, dst)
            });
        }
        return by_output_rows(m, n, 64, |o0, dst| {
            with_scratch(k, |buf| {
                for (o, d) in dst.chunks_exact_mut(n).enumerate() {
                    widen_cols(r, rhs, k, o0 + o, 1, buf);
                    f32_rows(buf, &x, k, n, d);
                }
            })
        });
    }
    let mut dst = vec![0f32; n * m];
    let threads = rayon::current_num_threads();
    let out = DstPtr(dst.as_mut_ptr());
    // Output rows [r0, r0 + rows) times column block [c0, c0 + cols), widened here.
    let block = |r0: usize, rows: usize, c0: usize, cols: usize| {
        with_scratch(cols * k, |buf| {
            widen_cols(r, rhs, k, c0, cols, buf);
            let o = out;
            // SAFETY: `buf` holds (k, cols) with strides (1, k); the destination block
            // (rows, cols) at row r0, column c0 lies inside the (n, m) output, and no
            // other task writes it.
            unsafe {
                gemm_block(
                    o.0.add(r0 * m + c0),
                    m,
                    lhs,
                    r0,
                    rows,
                    k,
                    buf.as_ptr(),
                    [1, k],
                    cols,
                    gemm::Parallelism::None,
                )
            }
        })
    };
    let col_blocks = |w: usize| (0..m.div_ceil(w)).map(move |c| (c * w, w.min(m - c * w)));
    if threads > 1 && n >= threads * SPLIT_MIN_ROWS {
        // Many rows (prefill): each thread its own rows, walking the column blocks (each
        // thread widens the whole weight once: k·m values against rows·k·m multiply-adds).
        let per = n.div_ceil(threads);
        (0..n.div_ceil(per)).into_par_iter().for_each(|t| {
            let (r0, rows) = (t * per, per.min(n - t * per));
            // Blocks of 256 columns: the widened block stays in L2 (measured faster, and
            // a smaller per-thread buffer, than blocks of a million values).
            for (c0, cols) in col_blocks(HALF_COLS) {
                block(r0, rows, c0, cols);
            }
        });
    } else {
        // Fewer rows: the column blocks are the tasks (narrower, so every thread has some).
        let w = (m.div_ceil(threads * 4))
            .next_multiple_of(16)
            .clamp(16, HALF_COLS);
        let blocks: Vec<_> = col_blocks(w).collect();
        blocks
            .into_par_iter()
            .for_each(|(c0, cols)| block(0, n, c0, cols));
    }
    dst
}

/// Output rows per thread from which a matmul is split into one single-threaded gemm per
/// thread instead of one gemm parallelised inside.
const SPLIT_MIN_ROWS: usize = 128;

/// Rows of the input up to which a dense matmul against a row-major weight runs as
/// dot products ([`dense_rows`]) instead of a gemm: decoding, where reading the weight
/// is the cost and the gemm's packing does not pay.
const GEMV_MAX_ROWS: usize = 8;

/// y (n, m) = x (n, k) · w^T for a row-major weight w (m, k): each weight row is read
/// once for all n input rows. Weight rows are split over rayon's threads.
fn dense_rows(w: &[f32], x: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
    by_output_rows(m, n, 64, |o0, dst| {
        let rows = dst.len() / n;
        f32_rows(&w[o0 * k..(o0 + rows) * k], x, k, n, dst)
    })
}

/// y (n, out) of a matmul computed by output rows (weight rows) for memory-bound
/// kernels: `kernel(o0, dst)` fills `dst[o * n + r]` for output rows `o0 + o` of one
/// task of up to `per_task` rows; tasks are split over rayon's threads (work stealing,
/// so a busy core slows it down gracefully), then the (out, n) result is transposed.
fn by_output_rows(
    out: usize,
    n: usize,
    per_task: usize,
    kernel: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut tmp = vec![0f32; out * n];
    tmp.par_chunks_mut(per_task * n)
        .enumerate()
        .for_each(|(c, dst)| kernel(c * per_task, dst));
    if n == 1 {
        return tmp;
    }
    let mut y = vec![0f32; n * out];
    for (o, row) in tmp.chunks_exact(n).enumerate() {
        for (r, v) in row.iter().enumerate() {
            y[r * out + o] = *v;
        }
    }
    y
}

/// dst[o * n + r] = w[o, :] · x[r, :] for the weight rows in `w` (row-major, k wide).
fn f32_rows(w: &[f32], x: &[f32], k: usize, n: usize, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features this copy is compiled for.
            return unsafe { f32_rows_avx2(w, x, k, n, dst) };
        }
    }
    f32_rows_generic(w, x, k, n, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn f32_rows_avx2(w: &[f32], x: &[f32], k: usize, n: usize, dst: &mut [f32]) {
    f32_rows_generic(w, x, k, n, dst)
}

/// Sixteen lanes of partial sums so the compiler vectorizes across them.
#[inline(always)]
fn f32_rows_generic(w: &[f32], x: &[f32], k: usize, n: usize, dst: &mut [f32]) {
    for (o, wrow) in w.chunks_exact(k).enumerate() {
        for r in 0..n {
            let xrow = &x[r * k..(r + 1) * k];
            let mut acc = [0f32; 16];
            let (wc, xc) = (wrow.chunks_exact(16), xrow.chunks_exact(16));
            let (wt, xt) = (wc.remainder(), xc.remainder());
            for (wb, xb) in wc.zip(xc) {
                for l in 0..16 {
                    acc[l] = wb[l].mul_add(xb[l], acc[l]);
                }
            }
            let tail: f32 = wt.iter().zip(xt).map(|(a, b)| a * b).sum();
            dst[o * n + r] = acc.iter().sum::<f32>() + tail;
        }
    }
}

/// Weights per 8-bit block (one f32 scale each), along the input dimension.
const Q8_BLOCK: usize = 32;

/// A weight matrix (out, in) in 8-bit blocks: `w[o, i] = scale[o, i / 32] * q[o, i]`, with
/// `scale = max |w| / 127` per block (llama.cpp's Q8_0 with an f32 scale, so Q8_0 weights
/// convert exactly). Multiplied against f32 activations: decoding reads a quarter of the
/// f32 bytes, and the activations are not rounded.
#[derive(Clone)]
pub(crate) struct Q8Matrix {
    out: usize,
    inp: usize,
    q: Arc<Vec<i8>>,
    scale: Arc<Vec<f32>>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Q8Matrix({}, {})", self.out, self.inp)
    }
}

impl Q8Matrix {
    /// Quantize an f32 (out, in) matrix; `in` must be a multiple of 32.
    pub(crate) fn from_f32(w: &Tensor) -> Result<Self> {
        let (out, inp) = w.dims2()?;
        if inp % Q8_BLOCK != 0 {
            return Err(ModelError::Other(format!(
                "8-bit blocks need rows of a multiple of {Q8_BLOCK}, found {inp}"
            )));
        }
        let mut q = vec![0i8; out * inp];
        let mut scale = vec![0f32; out * inp / Q8_BLOCK];
        // A few rows at a time, so a large table is never copied whole.
        const ROWS: usize = 256;
        for r0 in (0..out).step_by(ROWS) {
            let n = ROWS.min(out - r0);
            let data = w
                .narrow(0, r0, n)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let qs = &mut q[r0 * inp..(r0 + n) * inp];
            let ss = &mut scale[r0 * inp / Q8_BLOCK..(r0 + n) * inp / Q8_BLOCK];
            quantize_blocks(&data, qs, ss);
        }
        Ok(Self {
            out,
            inp,
            q: Arc::new(q),
            scale: Arc::new(scale),
        })
    }

    /// The f32 matrix (out, in).
    pub(crate) fn dequantize(&self, dev: &candle_core::Device) -> Result<Tensor> {
        use rayon::prelude::*;
        let mut w = vec![0f32; self.out * self.inp];
        w.par_chunks_mut(self.inp)
            .zip(self.q.par_chunks(self.inp))
            .zip(self.scale.par_chunks(self.inp / Q8_BLOCK))
            .for_each(|((w, q), s)| {
                for ((wb, qb), s) in w
                    .chunks_exact_mut(Q8_BLOCK)
                    .zip(q.chunks_exact(Q8_BLOCK))
                    .zip(s)
                {
                    for (x, &qv) in wb.iter_mut().zip(qb) {
                        *x = *s * qv as f32;
                    }
                }
            });
        Ok(Tensor::from_vec(w, (self.out, self.inp), dev)?)
    }

    /// x (m, in), contiguous f32 -> x W^T (m, out), by output rows ([`by_output_rows`]).
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (m, k) = xs.dims2()?;
        if k != self.inp {
            return Err(ModelError::Other(format!(
                "8-bit matmul: input has {k} features, the weight {}",
                self.inp
            )));
        }
        let x = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let y = by_output_rows(self.out, m, 16, |o0, dst| {
            let rows = dst.len() / m;
            let q = &self.q[o0 * k..(o0 + rows) * k];
            let s = &self.scale[o0 * k / Q8_BLOCK..(o0 + rows) * k / Q8_BLOCK];
            q8_rows(q, s, &x, k, m, dst);
        });
        Ok(Tensor::from_vec(y, (m, self.out), xs.device())?)
    }
}

/// Blocks of 32 values -> 8-bit values and one scale each (max |w| / 127).
fn quantize_blocks(data: &[f32], q: &mut [i8], scale: &mut [f32]) {
    for ((blk, qb), s) in data
        .chunks_exact(Q8_BLOCK)
        .zip(q.chunks_exact_mut(Q8_BLOCK))
        .zip(scale.iter_mut())
    {
        let amax = blk.iter().fold(0f32, |m, x| m.max(x.abs()));
        *s = amax / 127.0;
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        for (qv, x) in qb.iter_mut().zip(blk) {
            *qv = (x * inv).round().clamp(-127.0, 127.0) as i8;
        }
    }
}

/// dst[o * m + r] = sum_i w[o, i] * x[r, i] for the weight rows in `q`/`s`.
fn q8_rows(q: &[i8], s: &[f32], x: &[f32], k: usize, m: usize, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features this copy is compiled for.
            return unsafe { q8_rows_avx2(q, s, x, k, m, dst) };
        }
    }
    q8_rows_generic(q, s, x, k, m, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn q8_rows_avx2(q: &[i8], s: &[f32], x: &[f32], k: usize, m: usize, dst: &mut [f32]) {
    q8_rows_generic(q, s, x, k, m, dst)
}

/// Sixteen lanes of partial sums per block so the compiler vectorizes across them.
#[inline(always)]
fn q8_rows_generic(q: &[i8], s: &[f32], x: &[f32], k: usize, m: usize, dst: &mut [f32]) {
    let nb = k / Q8_BLOCK;
    for (o, (qrow, srow)) in q.chunks_exact(k).zip(s.chunks_exact(nb)).enumerate() {
        for r in 0..m {
            let xrow = &x[r * k..(r + 1) * k];
            let mut acc = [0f32; 16];
            for ((qb, xb), &sc) in qrow
                .chunks_exact(Q8_BLOCK)
                .zip(xrow.chunks_exact(Q8_BLOCK))
                .zip(srow)
            {
                let mut b = [0f32; 16];
                for l in 0..16 {
                    b[l] = qb[l] as f32 * xb[l] + qb[16 + l] as f32 * xb[16 + l];
                }
                for l in 0..16 {
                    acc[l] += sc * b[l];
                }
            }
            dst[o * m + r] = acc.iter().sum();
        }
    }
}

/// Rows from which a quantized layer multiplies dequantized f32 weights instead.
const QUANT_MAX_ROWS: usize = 32;

/// A dense layer `x W^T + b`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    w: Weight,
    b: Option<Tensor>,
}

impl Linear {
    /// `nn.Linear`: weight (out, in); quantized when the source has it quantized.
    pub(crate) fn torch(
        src: &Src,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Self> {
        let wname = format!("{name}.weight");
        let w = match src.quantized(&wname, &[d_out, d_in])? {
            Some(q) => Weight::Quant(q),
            None => Weight::Dense(src.matrix(&[d_out, d_in], &wname)?.t()?),
        };
        let b = if bias {
            Some(get(&src.vb, &[d_out], &format!("{name}.bias"))?)
        } else {
            None
        };
        Ok(Self { w, b })
    }

    /// An LM head tied to the embedding `name` ((vocab, d), already read as `dense`, which
    /// is the quantized table's exact dequantization when the source holds it quantized).
    pub(crate) fn tied(src: &Src, name: &str, dense: &Tensor) -> Result<Self> {
        let blocks = dense.dims2()?.1 % Q8_BLOCK == 0 && dense.device().is_cpu();
        let w = if blocks && src.has_quantized(name) {
            Weight::Quant(Q8Matrix::from_f32(dense)?)
        } else {
            Weight::Dense(dense.t()?)
        };
        Ok(Self { w, b: None })
    }

    /// GPT-2 `Conv1D`: weight (in, out), always with bias.
    pub(crate) fn conv1d(src: &Src, name: &str, d_in: usize, d_out: usize) -> Result<Self> {
        let w = src.matrix(&[d_in, d_out], &format!("{name}.weight"))?;
        let b = get(&src.vb, &[d_out], &format!("{name}.bias"))?;
        Ok(Self {
            w: Weight::Dense(w),
            b: Some(b),
        })
    }

    pub(crate) fn is_quantized(&self) -> bool {
        matches!(self.w, Weight::Quant(_))
    }

    /// (.., in) -> (.., out); flattens leading dims so one 2-D matmul runs.
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        let d_in = *dims.last().unwrap_or(&0);
        let n = xs.elem_count() / d_in.max(1);
        let xs = xs.reshape((n, d_in))?;
        let ys = match &self.w {
            Weight::Dense(w) => matmul(&xs, w)?,
            // The 8-bit kernels have no backward pass: a gradient would silently stop here.
            Weight::Quant(_) if xs.track_op() => {
                return Err(ModelError::Input(
                    "gradients through 8-bit weights are not supported: load the model without `quantized`".into(),
                ))
            }
            // The 8-bit kernel wins when memory bound (few rows: decoding) but loses to the
            // f32 gemm on many rows (prefill), where the weight is dequantized once per call
            // instead (a few percent of that gemm's time).
            Weight::Quant(q) if n < QUANT_MAX_ROWS => q.forward(&xs.contiguous()?)?,
            Weight::Quant(q) => matmul(&xs, &q.dequantize(xs.device())?.t()?)?,
        };
        let ys = match &self.b {
            Some(b) => ys.broadcast_add(b)?,
            None => ys,
        };
        let mut out = dims;
        *out.last_mut().expect("non-scalar") = ys.dim(1)?;
        Ok(ys.reshape(out)?)
    }
}

/// The LM head: a linear layer d -> vocab, with Gemma 2's final-logit soft-capping.
#[derive(Debug, Clone)]
pub(crate) struct LmHead {
    pub linear: Linear,
    /// `cap * tanh(logit / cap)`.
    pub softcap: Option<f64>,
}

impl LmHead {
    pub(crate) fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let y = self.linear.forward(h)?;
        Ok(match self.softcap {
            Some(cap) => ((y / cap)?.tanh()? * cap)?,
            None => y,
        })
    }

    pub(crate) fn is_quantized(&self) -> bool {
        self.linear.is_quantized()
    }
}

/// RMSNorm or LayerNorm over the last dimension.
#[derive(Debug, Clone)]
pub(crate) enum Norm {
    Rms { w: Tensor, eps: f32 },
    Layer { w: Tensor, b: Tensor, eps: f32 },
}

impl Norm {
    /// RMSNorm whose stored weight `w` multiplies as `1 + w` when `plus_one` (Gemma).
    pub(crate) fn rms_offset(
        src: &Src,
        name: &str,
        d: usize,
        eps: f64,
        plus_one: bool,
    ) -> Result<Self> {
        let w = get(&src.vb, &[d], &format!("{name}.weight"))?;
        let w = if plus_one { (w + 1.0)? } else { w };
        Ok(Norm::Rms { w, eps: eps as f32 })
    }

    pub(crate) fn layer(src: &Src, name: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(Norm::Layer {
            w: get(&src.vb, &[d], &format!("{name}.weight"))?,
            b: get(&src.vb, &[d], &format!("{name}.bias"))?,
            eps: eps as f32,
        })
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = xs.contiguous()?;
        if xs.track_op() {
            // candle's fused norm kernels have no backward pass; these compositions do.
            return Ok(match self {
                Norm::Rms { w, eps } => candle_nn::ops::rms_norm_slow(&xs, w, *eps)?,
                Norm::Layer { w, b, eps } => candle_nn::ops::layer_norm_slow(&xs, w, b, *eps)?,
            });
        }
        Ok(match self {
            Norm::Rms { w, eps } => candle_nn::ops::rms_norm(&xs, w, *eps)?,
            Norm::Layer { w, b, eps } => candle_nn::ops::layer_norm(&xs, w, b, *eps)?,
        })
    }
}

/// Rotary embedding on (b, t, heads, hd) with cos/sin (b, t, hd/2), halves rotated (the
/// Hugging Face layout). candle's fused kernel has no backward pass, so inside a graph
/// (LoRA training) the same rotation runs as tensor ops.
pub(crate) fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !xs.track_op() {
        return Ok(candle_nn::rotary_emb::rope_thd(xs, cos, sin)?);
    }
    let hd = xs.dim(3)?;
    let half = hd / 2;
    let (cos, sin) = (cos.unsqueeze(2)?, sin.unsqueeze(2)?);
    let x1 = xs.narrow(3, 0, half)?;
    let x2 = xs.narrow(3, half, half)?;
    let y1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let y2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Ok(Tensor::cat(&[y1, y2], 3)?)
}

/// Rotary inverse frequencies (head_dim / 2 of them), with the configured scaling.
/// Mirrors transformers' `_compute_default_rope_parameters` / `_compute_llama3_parameters`.
pub(crate) fn rope_inv_freq(rope: &RopeConfig, head_dim: usize) -> Vec<f32> {
    let base: Vec<f64> = (0..head_dim / 2)
        .map(|i| 1.0 / rope.theta.powf((2 * i) as f64 / head_dim as f64))
        .collect();
    match rope.scaling {
        RopeScaling::None => base.iter().map(|&f| f as f32).collect(),
        RopeScaling::Linear { factor } => base.iter().map(|&f| (f / factor) as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let old = original_max_position_embeddings as f64;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let scaled = if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    };
                    scaled as f32
                })
                .collect()
        }
    }
}

/// cos/sin tables (b, t, head_dim/2) for per-row positions `pos` (b, t) u32.
pub(crate) fn rope_tables(inv_freq: &Tensor, pos: &Tensor) -> Result<(Tensor, Tensor)> {
    let freqs = pos
        .to_dtype(DType::F32)?
        .unsqueeze(D::Minus1)?
        .broadcast_mul(inv_freq)?;
    Ok((freqs.cos()?.contiguous()?, freqs.sin()?.contiguous()?))
}

/// Which keys each query of a left-padded causal chunk may attend to: the chunk holds
/// padded positions `[start, start + t)` and the keys are positions `[0, start + t)`. Rows
/// are laid out `[shared][pad][own tokens]` (see `hooks::Frame`): keys at a row's padding
/// are masked. A padding query attends to itself only, so its softmax row is never empty.
#[derive(Debug, Clone)]
pub(crate) struct CausalPad {
    /// Left padding of each batch row (after the shared prefix).
    pub pad: Vec<usize>,
    /// Length of the token prefix every row shares (0: none).
    pub shared: usize,
    pub start: usize,
    /// Sliding window: a query sees itself and the `window - 1` tokens before it, counted
    /// on the unpadded sequence (so the padding gap after a shared prefix is not counted).
    pub window: Option<usize>,
}

impl CausalPad {
    /// Query `i` of row `r` attends to keys `[lo, hi)` except the masked gap `[gap.0,
    /// gap.1)` (empty when `gap.0 == gap.1`): `(lo, hi, gap)`.
    fn keys(&self, r: usize, i: usize) -> (usize, usize, (usize, usize)) {
        let q = self.start + i;
        let (p0, p1) = (self.shared, self.shared + self.pad[r]);
        let (lo, hi, gap) = if (p0..p1).contains(&q) {
            return (q, q + 1, (q, q));
        } else if q < p0 {
            (0, q + 1, (0, 0))
        } else if p0 == 0 {
            (p1, q + 1, (0, 0))
        } else {
            (0, q + 1, (p0, p1))
        };
        let Some(w) = self.window else {
            return (lo, hi, gap);
        };
        // Unpadded position of the query, the first unpadded key it sees, and that key's
        // padded index.
        let pad = self.pad[r];
        let u = if q >= p1 { q - pad } else { q };
        let first = (u + 1).saturating_sub(w);
        let first = if first >= p0 && q >= p1 {
            first + pad
        } else {
            first
        };
        let lo = lo.max(first);
        // A gap wholly below `lo` is masked anyway; keep it inside [lo, hi) or empty.
        let gap = if gap.1 <= lo {
            (lo, lo)
        } else {
            (gap.0.max(lo), gap.1)
        };
        (lo, hi, gap)
    }

    /// The same mask as an additive tensor (b, 1, t, start + t), `None` when nothing is
    /// masked; for devices without the CPU kernel.
    fn additive(&self, t: usize, dev: &candle_core::Device) -> Result<Option<Tensor>> {
        let b = self.pad.len();
        let total = self.start + t;
        let mut m = vec![0f32; b * t * total];
        let mut any = false;
        for r in 0..b {
            for i in 0..t {
                let (lo, hi, gap) = self.keys(r, i);
                let row = &mut m[(r * t + i) * total..(r * t + i + 1) * total];
                for (k, v) in row.iter_mut().enumerate() {
                    if k < lo || k >= hi || (gap.0..gap.1).contains(&k) {
                        *v = f32::NEG_INFINITY;
                        any = true;
                    }
                }
            }
        }
        if !any {
            return Ok(None);
        }
        Ok(Some(Tensor::from_vec(m, (b, 1, t, total), dev)?))
    }
}

/// Scaled dot-product attention with grouped kv heads (heads sharing a kv head are
/// adjacent): q (b, t, n_heads, hd), k/v (b, s, n_kv_heads, hd), any strides with a
/// contiguous last dimension -> per-head outputs (b, t, n_heads, hd), contiguous.
/// `softcap`: scores become `cap * tanh(score / cap)` after scaling, before the mask.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &CausalPad,
    scale: f64,
    softcap: Option<f64>,
) -> Result<Tensor> {
    if q.device().is_cpu() && q.dtype() == DType::F32 {
        let op = CpuAttention {
            mask: mask.clone(),
            scale: scale as f32,
            softcap: softcap.map(|c| c as f32),
        };
        // With backward: free unless q/k/v are part of a graph (LoRA training).
        return Ok(q.apply_op3(k, v, op)?);
    }
    // Generic path (other devices): heads first, grouped without repeating k/v.
    let (b, t, nh, hd) = q.dims4()?;
    let (_, s, nkv, _) = k.dims4()?;
    let g = nh / nkv;
    let q = q.transpose(1, 2)?.contiguous()?;
    let k = k.transpose(1, 2)?.contiguous()?;
    let v = v.transpose(1, 2)?.contiguous()?;
    let q = (q * scale)?.reshape((b, nkv, g * t, hd))?;
    let att = q.matmul(&k.t()?)?.reshape((b, nh, t, s))?;
    let att = match softcap {
        Some(cap) => ((att / cap)?.tanh()? * cap)?,
        None => att,
    };
    let att = match mask.additive(t, q.device())? {
        Some(m) => att.broadcast_add(&m)?,
        None => att,
    };
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    let out = att.reshape((b, nkv, g * t, s))?.matmul(&v)?;
    Ok(out.reshape((b, nh, t, hd))?.transpose(1, 2)?.contiguous()?)
}

/// The CPU attention kernel: one task per (batch row, head), each two small gemms on
/// strided views (no transposes, no repeated kv heads, no mask tensor) with the masked
/// softmax done in place between them.
struct CpuAttention {
    mask: CausalPad,
    scale: f32,
    softcap: Option<f32>,
}

/// A 4-D f32 view: data, offset of element 0, strides (last one must be 1).
struct View<'a> {
    data: &'a [f32],
    off: usize,
    st: [usize; 3],
}

impl<'a> View<'a> {
    fn new(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<(Self, [usize; 4])> {
        let CpuStorage::F32(data) = s else {
            candle_core::bail!("attention: {what} must be f32")
        };
        let (d, st) = (l.dims(), l.stride());
        if d.len() != 4 || st[3] != 1 {
            candle_core::bail!("attention: {what} must be 4-D with a contiguous last dim")
        }
        let off = l.start_offset();
        let last = off
            + (0..4)
                .map(|i| d[i].saturating_sub(1) * st[i])
                .sum::<usize>();
        if d.contains(&0) || last >= data.len() {
            candle_core::bail!("attention: {what} view out of bounds or empty")
        }
        Ok((
            Self {
                data,
                off,
                st: [st[0], st[1], st[2]],
            },
            [d[0], d[1], d[2], d[3]],
        ))
    }

    /// Pointer to element (b, 0, h, 0).
    fn at(&self, b: usize, h: usize) -> *const f32 {
        self.data[self.off + b * self.st[0] + h * self.st[2]..].as_ptr()
    }
}

/// Raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each task writes only its own (row, head) slots of the output.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl candle_core::CustomOp3 for CpuAttention {
    fn name(&self) -> &'static str {
        "steerbench-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (q, [b, t, nh, hd]) = View::new(qs, ql, "q")?;
        let (k, [kb, s, nkv, khd]) = View::new(ks, kl, "k")?;
        let (v, vd) = View::new(vs, vl, "v")?;
        if kb != b || khd != hd || vd != [kb, s, nkv, khd] || nh % nkv != 0 {
            candle_core::bail!(
                "attention: shapes q {:?} k {:?} v {:?} do not fit",
                ql.dims(),
                kl.dims(),
                vl.dims()
            )
        }
        if self.mask.pad.len() != b || self.mask.start + t != s {
            candle_core::bail!(
                "attention: mask for {} rows, start {}, does not fit q {:?} k {:?}",
                self.mask.pad.len(),
                self.mask.start,
                ql.dims(),
                kl.dims()
            )
        }
        let g = nh / nkv;
        let mut out = vec![0f32; b * t * nh * hd];
        let optr = OutPtr(out.as_mut_ptr());
        (0..b * nh).into_par_iter().for_each_init(
            || vec![0f32; t * s],
            |scores, task| {
                let (r, h) = (task / nh, task % nh);
                let o = optr;
                // SAFETY: every pointer below addresses elements inside the views checked
                // by `View::new` (or inside `scores`/`out`, sized t*s and b*t*nh*hd), and
                // this task writes only out[r, .., h, ..].
                unsafe {
                    gemm::gemm(
                        t,
                        s,
                        hd,
                        scores.as_mut_ptr(),
                        1,
                        s as isize,
                        false,
                        q.at(r, h),
                        1,
                        q.st[1] as isize,
                        k.at(r, h / g),
                        k.st[1] as isize,
                        1,
                        0.0,
                        self.scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for i in 0..t {
                    let row = &mut scores[i * s..(i + 1) * s];
                    let (lo, hi, gap) = self.mask.keys(r, i);
                    if let Some(cap) = self.softcap {
                        row[lo..hi]
                            .iter_mut()
                            .for_each(|x| *x = (*x / cap).tanh() * cap);
                    }
                    row[gap.0..gap.1]
                        .iter_mut()
                        .for_each(|x| *x = f32::NEG_INFINITY);
                    let max = row[lo..hi].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                    let mut sum = 0f32;
                    for x in &mut row[lo..hi] {
                        *x = (*x - max).exp();
                        sum += *x;
                    }
                    let inv = 1.0 / sum;
                    row[lo..hi].iter_mut().for_each(|x| *x *= inv);
                    row[..lo].iter_mut().for_each(|x| *x = 0.0);
                    row[hi..].iter_mut().for_each(|x| *x = 0.0);
                }
                unsafe {
                    gemm::gemm(
                        t,
                        hd,
                        s,
                        o.0.add(r * t * nh * hd + h * hd),
                        1,
                        (nh * hd) as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        s as isize,
                        v.at(r, h / g),
                        1,
                        v.st[1] as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, t, nh, hd))))
    }

    /// Gradients of q, k and v, recomputing the probabilities with tensor ops:
    /// with S the (soft-capped) scores, P = softmax(S + mask) and O = P V,
    /// dV = Pᵀ dO, dS = P ⊙ (dP − rowsum(dP ⊙ P)) with dP = dO Vᵀ, through the cap's
    /// tanh, then dQ = scale · dS K and dK = scale · dSᵀ Q; grouped heads sum into their
    /// shared kv head.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, nh, hd) = q.dims4()?;
        let (_, s, nkv, _) = k.dims4()?;
        let g = nh / nkv;
        let heads_first = |x: &Tensor| x.transpose(1, 2)?.contiguous();
        // kv heads repeated to one per query head: (b, nh, s, hd).
        let repeat = |x: &Tensor| -> candle_core::Result<Tensor> {
            heads_first(x)?
                .unsqueeze(2)?
                .broadcast_as((b, nkv, g, s, hd))?
                .reshape((b, nh, s, hd))
        };
        let (qh, kh, vh) = (heads_first(q)?, repeat(k)?, repeat(v)?);
        let doh = heads_first(grad)?;
        let raw = (qh.matmul(&kh.t()?)? * self.scale as f64)?;
        let (scores, capped) = match self.softcap {
            Some(cap) => {
                let th = (&raw / cap as f64)?.tanh()?;
                ((&th * cap as f64)?, Some(th))
            }
            None => (raw, None),
        };
        let scores = match self
            .mask
            .additive(t, q.device())
            .map_err(candle_core::Error::wrap)?
        {
            Some(m) => scores.broadcast_add(&m)?,
            None => scores,
        };
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        let dv = p.t()?.matmul(&doh)?;
        let dp = doh.matmul(&vh.t()?)?;
        let ds = (&p * dp.broadcast_sub(&(&dp * &p)?.sum_keepdim(3)?)?)?;
        let ds = match capped {
            Some(th) => (ds * (1.0 - th.sqr()?)?)?,
            None => ds,
        };
        let ds = (ds * self.scale as f64)?;
        let dq = ds.matmul(&kh)?;
        let dk = ds.t()?.matmul(&qh)?;
        // (b, nh, x, hd) -> (b, x, nkv, hd), summing each group of heads.
        let back = |x: Tensor, len: usize| -> candle_core::Result<Tensor> {
            x.reshape((b, nkv, g, len, hd))?
                .sum(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        Ok((
            Some(dq.transpose(1, 2)?.contiguous()?),
            Some(back(dk, s)?),
            Some(back(dv, s)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_paths_equal_candles_matmul() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let dev = candle_core::Device::Cpu;
        // k not a multiple of 16 (the dot-product tail), m above one rayon chunk.
        let (k, m) = (37, 150);
        let w: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let w = Tensor::from_vec(w, (m, k), &dev).unwrap();
        // Few rows (dot products), a gemm, and enough rows to split the gemm by rows
        // over threads (uneven split included); the input as a strided view too.
        let split = rayon::current_num_threads() * SPLIT_MIN_ROWS + 7;
        for n in (1..=GEMV_MAX_ROWS + 1).chain([40, split]) {
            let x: Vec<f32> = (0..n * (k + 3))
                .map(|_| rng.gen_range(-1.0f32..1.0))
                .collect();
            let wide = Tensor::from_vec(x, (n, k + 3), &dev).unwrap();
            for x in [
                wide.narrow(1, 2, k).unwrap(),
                wide.narrow(1, 0, k).unwrap().contiguous().unwrap(),
            ] {
                let ours = matmul(&x, &w.t().unwrap()).unwrap();
                let reference = x
                    .contiguous()
                    .unwrap()
                    .matmul(&w.t().unwrap().contiguous().unwrap())
                    .unwrap();
                let diff = (ours - reference)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(diff < 1e-5, "{n} rows: {diff}");
            }
        }
    }

    /// bf16 / f16 weights: every path (dot products, column-block tasks, row split over
    /// threads; row-major and GPT-2's (in, out) layout) equals the f32 matmul of the same
    /// weight widened to f32, and the result is f32.
    #[test]
    fn half_weight_matmul_equals_f32_matmul_of_the_widened_weight() {
        let dev = candle_core::Device::Cpu;
        let (k, m) = (45, 300);
        let split = rayon::current_num_threads() * SPLIT_MIN_ROWS + 5;
        for dtype in [DType::BF16, DType::F16] {
            let w32 = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let w = w32.to_dtype(dtype).unwrap();
            let wide = w.to_dtype(DType::F32).unwrap();
            // (out, in) viewed transposed, and (in, out) stored as is (Conv1D).
            let views = [
                (w.t().unwrap(), wide.t().unwrap().contiguous().unwrap()),
                (
                    w.t().unwrap().contiguous().unwrap(),
                    wide.t().unwrap().contiguous().unwrap(),
                ),
            ];
            for n in [1, 3, GEMV_MAX_ROWS, GEMV_MAX_ROWS + 1, 40, split] {
                let x = Tensor::randn(0f32, 1.0, (n, k + 2), &dev).unwrap();
                let x = x.narrow(1, 1, k).unwrap();
                for (wv, reference) in &views {
                    let ours = matmul(&x, wv).unwrap();
                    assert_eq!(ours.dtype(), DType::F32);
                    let want = x.contiguous().unwrap().matmul(reference).unwrap();
                    let diff = (ours - want)
                        .unwrap()
                        .abs()
                        .unwrap()
                        .max_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    assert!(diff < 1e-4, "{dtype:?}, {n} rows: {diff}");
                }
            }
        }
    }

    #[test]
    fn q8_matrix_multiplies_like_its_dequantized_weight() {
        let dev = candle_core::Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (37, 64), &dev).unwrap();
        let q = Q8Matrix::from_f32(&w).unwrap();
        let wd = q.dequantize(&dev).unwrap();
        // Rounding is at most half a step (max |w| of the block / 254).
        let err = (&wd - &w).unwrap().abs().unwrap().max_all().unwrap();
        let amax = w.abs().unwrap().max_all().unwrap();
        assert!(err.to_scalar::<f32>().unwrap() <= amax.to_scalar::<f32>().unwrap() / 254.0 + 1e-6);
        // Re-blocking an already 8-bit matrix is exact.
        let again = Q8Matrix::from_f32(&wd).unwrap().dequantize(&dev).unwrap();
        let d = (&again - &wd).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() <= 1e-6);
        for m in [1, 3, 40] {
            let x = Tensor::randn(0f32, 1.0, (m, 64), &dev).unwrap();
            let want = x.matmul(&wd.t().unwrap()).unwrap();
            let got = q.forward(&x).unwrap();
            assert_eq!(got.dims(), &[m, 37]);
            let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-4, "m={m}");
        }
        assert!(Q8Matrix::from_f32(&Tensor::zeros((2, 33), DType::F32, &dev).unwrap()).is_err());
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let cfg = RopeConfig {
            theta: 500000.0,
            partial_rotary_factor: 1.0,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 32,
            },
        };
        let plain = rope_inv_freq(
            &RopeConfig {
                scaling: RopeScaling::None,
                ..cfg
            },
            16,
        );
        let scaled = rope_inv_freq(&cfg, 16);
        assert_eq!(plain[0], scaled[0]);
        assert!((scaled[7] - plain[7] / 8.0).abs() < 1e-12);
        assert!(scaled.iter().zip(&plain).all(|(s, p)| s <= p));
    }
}
