//! llama.cpp / repeng control vectors in GGUF.
//!
//! Format (what llama.cpp's `common_control_vector_load_one` reads and
//! repeng's `ControlVector.export_gguf` writes): `general.architecture =
//! "controlvector"`, `controlvector.model_hint` (string),
//! `controlvector.layer_count` (u32), and one 1-D F32 tensor `direction.<k>`
//! of length `n_embd` per steered layer. llama.cpp rejects `direction.0`,
//! non-F32 and non-1-D tensors; it sums duplicate indices and ignores the metadata.
//! We write GGUF v2 through candle's `gguf_file::write` (llama.cpp reads v2
//! and v3, only v1 is refused; data aligned to the default 32 bytes).
//!
//! Layer convention (checked against llama.cpp's source): `direction.k` is
//! copied into the model's `cvec` tensor `k` (`llama_adapter_cvec::apply`
//! stores `data + n_embd·(k−1)` into `tensors[k]`), and every decoder block
//! `il` ends with `cur = ggml_add(cur, ffn_inp); cur = build_cvec(cur, il);`,
//! i.e. `direction.k` is added to the OUTPUT of block k (0-based), at every
//! position. In steerbench terms: `direction.k` ⇔ `ResidPost(k)`
//! (= `ResidPre(k+1)`), and block 0's output cannot be steered. repeng
//! applies its `direction.k` at the output of `model.layers[k]` too (it reads
//! the vector from `hidden_states[k]`, the output of block k−1, an off-by-one
//! inside repeng that does not change where the file's vector is added).
//! [`ControlVector::directions`] is keyed by that block index.

use crate::error::{Result, SteeringError};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// A set of per-layer steering directions in llama.cpp's convention.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlVector {
    /// Free-text model family hint (repeng writes `model.config.model_type`, e.g. "llama").
    pub model_hint: String,
    /// Block index k (≥ 1) → vector added to the output of block k (our `ResidPost(k)`).
    pub directions: BTreeMap<usize, Vec<f32>>,
}

impl ControlVector {
    /// Hidden size (all directions share it); errors when empty or ragged.
    pub fn hidden_size(&self) -> Result<usize> {
        let mut it = self.directions.iter();
        let (_, first) = it
            .next()
            .ok_or_else(|| SteeringError::Format("control vector has no directions".into()))?;
        for (k, v) in it {
            if v.len() != first.len() {
                return Err(SteeringError::Format(format!(
                    "direction.{k} has length {}, expected {}",
                    v.len(),
                    first.len()
                )));
            }
        }
        if first.is_empty() {
            return Err(SteeringError::Format(
                "control-vector directions have length 0".into(),
            ));
        }
        Ok(first.len())
    }

    fn validate(&self) -> Result<usize> {
        if self.directions.contains_key(&0) {
            return Err(SteeringError::Format(
                "direction.0 cannot be written: llama.cpp rejects layer index 0 (the output of block 0 \
                 is never steered); steer ResidPost(k) with k >= 1"
                    .into(),
            ));
        }
        if let Some((k, _)) = self
            .directions
            .iter()
            .find(|(_, v)| v.iter().any(|x| !x.is_finite()))
        {
            return Err(SteeringError::Numerical(format!(
                "direction.{k} contains NaN or infinite values"
            )));
        }
        self.hidden_size()
    }

    /// Writes the GGUF to any seekable writer.
    pub fn write_to<W: Write + Seek>(&self, w: &mut W) -> Result<()> {
        let d = self.validate()?;
        let arch = gguf_file::Value::String("controlvector".into());
        let hint = gguf_file::Value::String(self.model_hint.clone());
        let count = gguf_file::Value::U32(self.directions.len() as u32);
        let metadata = [
            ("general.architecture", &arch),
            ("controlvector.model_hint", &hint),
            ("controlvector.layer_count", &count),
        ];
        let mut tensors = Vec::with_capacity(self.directions.len());
        for (k, v) in &self.directions {
            let t = Tensor::from_slice(v, d, &Device::Cpu)?;
            tensors.push((
                format!("direction.{k}"),
                QTensor::quantize(&t, GgmlDType::F32)?,
            ));
        }
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        gguf_file::write(w, &metadata, &refs)?;
        Ok(())
    }

    /// Writes `path` (GGUF).
    pub fn write_file(&self, path: &Path) -> Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        self.write_to(&mut f)?;
        f.flush()?;
        Ok(())
    }

    /// Reads a control vector from any seekable reader, with llama.cpp's checks.
    pub fn read_from<R: Read + Seek>(r: &mut R) -> Result<Self> {
        let content = gguf_file::Content::read(r)
            .map_err(|e| SteeringError::Format(format!("not a GGUF file: {e}")))?;
        match content.metadata.get("general.architecture") {
            Some(gguf_file::Value::String(a)) if a == "controlvector" => {}
            Some(other) => {
                return Err(SteeringError::Format(format!(
                    "general.architecture is {other:?}, expected \"controlvector\""
                )))
            }
            None => {
                return Err(SteeringError::Format(
                    "GGUF has no general.architecture".into(),
                ))
            }
        }
        let model_hint = match content.metadata.get("controlvector.model_hint") {
            Some(gguf_file::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let mut directions = BTreeMap::new();
        let mut names: Vec<&String> = content.tensor_infos.keys().collect();
        names.sort();
        for name in names {
            let k = name
                .strip_prefix("direction.")
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| {
                    SteeringError::Format(format!(
                        "unexpected tensor {name:?} (want direction.<k>)"
                    ))
                })?;
            if k == 0 {
                return Err(SteeringError::Format(
                    "direction.0 is invalid (llama.cpp rejects it)".into(),
                ));
            }
            let info = &content.tensor_infos[name];
            if info.ggml_dtype != GgmlDType::F32 || info.shape.rank() != 1 {
                return Err(SteeringError::Format(format!(
                    "{name} must be a 1-D F32 tensor, found {:?} with shape {:?}",
                    info.ggml_dtype, info.shape
                )));
            }
            let q = content.tensor(r, name, &Device::Cpu)?;
            directions.insert(k, q.dequantize(&Device::Cpu)?.to_vec1::<f32>()?);
        }
        let cv = ControlVector {
            model_hint,
            directions,
        };
        cv.hidden_size()?;
        Ok(cv)
    }

    /// Reads `path` (GGUF).
    pub fn read_file(path: &Path) -> Result<Self> {
        let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
        Self::read_from(&mut f)
    }
}
