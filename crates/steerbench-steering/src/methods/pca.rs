//! RepE / repeng-style PCA directions with a fixed, meaningful sign.

use super::orient_pos_higher;
use crate::error::Result;
use crate::linalg::top_axis;
use crate::matrix::{check_pairs, Matrix};
use serde::{Deserialize, Serialize};

/// A unit principal direction and the share of the (uncentred) second moment it explains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaDirection {
    pub direction: Vec<f32>,
    pub explained: f32,
}

/// `pca_diff`: first principal axis of the paired differences (pos − neg).
///
/// The differences are NOT mean-centred: centring would subtract exactly the
/// consistent concept shift (the CAA component) that we want to find. The sign
/// is fixed so that positives project higher than negatives on average
/// (llama.cpp's cvector generator leaves it random).
pub fn pca_diff(pos: &Matrix, neg: &Matrix) -> Result<PcaDirection> {
    check_pairs(pos, neg, 1)?;
    let (mut direction, explained) = top_axis(&pos.sub(neg)?)?;
    orient_pos_higher(&mut direction, pos, neg);
    Ok(PcaDirection {
        direction,
        explained,
    })
}

/// `pca_center` (repeng): first principal axis of class-centred activations —
/// each pair is centred on its own pair mean, so both (pos − m) and (neg − m)
/// enter. Sign fixed as in [`pca_diff`].
///
/// Note: for paired data, (pos − m) = (pos − neg)/2 and (neg − m) = −(pos − neg)/2,
/// so this axis equals [`pca_diff`]'s (the same holds in repeng, whose sklearn
/// centring is a no-op on these rows). It is kept as its own method so repeng
/// configurations map one to one; the `explained` share is identical too.
pub fn pca_center(pos: &Matrix, neg: &Matrix) -> Result<PcaDirection> {
    check_pairs(pos, neg, 1)?;
    let mut data = Vec::with_capacity(2 * pos.data.len());
    for (p, n) in pos.iter_rows().zip(neg.iter_rows()) {
        data.extend(p.iter().zip(n).map(|(a, b)| (a - b) / 2.0));
        data.extend(p.iter().zip(n).map(|(a, b)| (b - a) / 2.0));
    }
    let centred = Matrix::new(2 * pos.rows, pos.cols, data)?;
    let (mut direction, explained) = top_axis(&centred)?;
    orient_pos_higher(&mut direction, pos, neg);
    Ok(PcaDirection {
        direction,
        explained,
    })
}

/// repeng's exact `pca_diff`: sklearn-style PCA, i.e. the differences ARE
/// mean-centred first, so the axis is the direction of largest *variation*
/// of the differences around the mean shift. Useful to reproduce repeng; it
/// misses a perfectly consistent shift (use [`pca_diff`] for that).
pub fn pca_diff_centered(pos: &Matrix, neg: &Matrix) -> Result<PcaDirection> {
    check_pairs(pos, neg, 2)?;
    let diff = pos.sub(neg)?;
    let mean = diff.col_mean()?;
    let mut centred = diff;
    for r in centred.data.chunks_mut(pos.cols) {
        r.iter_mut().zip(&mean).for_each(|(x, m)| *x -= m);
    }
    let (mut direction, explained) = top_axis(&centred)?;
    orient_pos_higher(&mut direction, pos, neg);
    Ok(PcaDirection {
        direction,
        explained,
    })
}
