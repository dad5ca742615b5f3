//! Pure math of sentence embeddings: mean pooling over the attention mask, L2 normalisation,
//! cosine similarity. No I/O, so it is tested on hand-made tensors.

use candle_core::{DType, Tensor, D};

use crate::error::{EmbedError, Result};

/// Mean of `hidden` `(b, t, d)` over the positions where `mask` `(b, t)` is 1: padding never
/// counts. A row with no real token gives zeros (the count is clamped as sentence-transformers
/// does, at 1e-9).
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (b, t, _) = hidden.dims3()?;
    let (mb, mt) = mask.dims2()?;
    if (mb, mt) != (b, t) {
        return Err(candle_core::Error::Msg(format!(
            "mask shape ({mb}, {mt}) does not match hidden states ({b}, {t}, _)"
        ))
        .into());
    }
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?; // (b, t, 1)
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (b, d)
    let count = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?; // (b, 1)
    Ok(summed.broadcast_div(&count)?)
}

/// Rows of `xs` `(b, d)` scaled to unit L2 norm (norm clamped at 1e-12 like torch's normalize).
pub fn l2_normalize(xs: &Tensor) -> Result<Tensor> {
    let norm = xs
        .to_dtype(DType::F32)?
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(xs.broadcast_div(&norm.to_dtype(xs.dtype())?)?)
}

/// Cosine similarity of two vectors; 0 when either is all zeros. Sums in f64 so a long
/// vector's rounding does not show.
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32> {
    if a.len() != b.len() {
        return Err(EmbedError::DimMismatch(a.len(), b.len()));
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return Ok(0.0);
    }
    Ok((dot / (na.sqrt() * nb.sqrt())) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mean_pool_ignores_padding() {
        let dev = Device::Cpu;
        // Row 0: two real tokens and one pad (whose huge value must not leak in);
        // row 1: three real tokens.
        let h = Tensor::new(
            &[
                [[1f32, 2.], [3., 4.], [1000., 1000.]],
                [[1., 1.], [2., 2.], [6., 0.]],
            ],
            &dev,
        )
        .unwrap();
        let m = Tensor::new(&[[1u32, 1, 0], [1, 1, 1]], &dev).unwrap();
        let p = mean_pool(&h, &m).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(p, vec![vec![2., 3.], vec![3., 1.]]);
    }

    #[test]
    fn mean_pool_of_an_all_padding_row_is_zero_not_nan() {
        let h = Tensor::ones((1, 2, 3), DType::F32, &Device::Cpu).unwrap();
        let m = Tensor::zeros((1, 2), DType::U32, &Device::Cpu).unwrap();
        let p = mean_pool(&h, &m).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(p, vec![vec![0., 0., 0.]]);
    }

    #[test]
    fn mean_pool_rejects_a_mask_of_another_shape() {
        let h = Tensor::ones((2, 3, 4), DType::F32, &Device::Cpu).unwrap();
        let m = Tensor::ones((2, 2), DType::U32, &Device::Cpu).unwrap();
        assert!(mean_pool(&h, &m)
            .unwrap_err()
            .to_string()
            .contains("does not match"));
    }

    #[test]
    fn normalize_gives_unit_rows_and_keeps_zero_rows() {
        let x = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu).unwrap();
        let y = l2_normalize(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, vec![vec![0.6, 0.8], vec![0., 0.]]);
    }

    #[test]
    fn cosine_by_hand() {
        assert!((cosine(&[1., 0.], &[1., 1.]).unwrap() - 0.5f32.sqrt()).abs() < 1e-7);
        assert_eq!(cosine(&[1., 2.], &[-2., 1.]).unwrap(), 0.0);
        assert!((cosine(&[1., 2.], &[-1., -2.]).unwrap() + 1.0).abs() < 1e-7);
        assert_eq!(cosine(&[0., 0.], &[1., 1.]).unwrap(), 0.0);
        assert!(matches!(
            cosine(&[1.], &[1., 2.]),
            Err(EmbedError::DimMismatch(1, 2))
        ));
    }
}
