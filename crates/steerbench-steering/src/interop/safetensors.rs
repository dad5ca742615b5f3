//! `vectors.safetensors`: steering vectors as f32 tensors named
//! `<method>.layer<i>`, with the model fingerprint in the header metadata
//! (`model_hash`, `hidden_size`, `n_layers`, plus `format = steerbench-vectors`).

use super::fingerprint::ModelFingerprint;
use crate::error::{Result, SteeringError};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// One named vector: method name and layer index.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedVector {
    pub method: String,
    pub layer: usize,
    pub vector: Vec<f32>,
}

const FORMAT: &str = "steerbench-vectors";

/// Serialises vectors + fingerprint to safetensors bytes. Method names must be
/// non-empty and free of '.', (method, layer) unique, lengths = hidden size.
pub fn vectors_to_safetensors(
    vectors: &[NamedVector],
    model: &ModelFingerprint,
) -> Result<Vec<u8>> {
    let mut bytes: Vec<(String, Vec<u8>)> = Vec::with_capacity(vectors.len());
    for v in vectors {
        if v.method.is_empty() || v.method.contains('.') {
            return Err(SteeringError::InvalidParameter(format!(
                "method name {:?} must be non-empty without '.'",
                v.method
            )));
        }
        if v.vector.len() != model.hidden_size {
            return Err(SteeringError::Shape {
                what: format!("{}.layer{} length", v.method, v.layer),
                expected: model.hidden_size.to_string(),
                got: v.vector.len().to_string(),
            });
        }
        let name = tensor_name(&v.method, v.layer);
        if bytes.iter().any(|(n, _)| *n == name) {
            return Err(SteeringError::InvalidParameter(format!(
                "duplicate vector {name}"
            )));
        }
        bytes.push((
            name,
            v.vector.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
    }
    let views = bytes
        .iter()
        .map(|(n, b)| {
            Ok((
                n.as_str(),
                TensorView::new(Dtype::F32, vec![model.hidden_size], b).map_err(st_err)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("model_hash".to_string(), model.model_hash.clone()),
        ("hidden_size".to_string(), model.hidden_size.to_string()),
        ("n_layers".to_string(), model.n_layers.to_string()),
    ]);
    let buf = safetensors::serialize(views, Some(meta)).map_err(st_err)?;
    canonical_header(buf)
}

/// The same file with its JSON header's keys in sorted order. safetensors writes the
/// `__metadata__` map from a `HashMap`, whose order changes from call to call; sorted, the
/// file is byte-identical across runs (its manifest hash is stable). Keys are only
/// reordered, so the header keeps its length and every data offset stays valid.
fn canonical_header(mut buf: Vec<u8>) -> Result<Vec<u8>> {
    let bad = || SteeringError::Format("safetensors header out of bounds".into());
    let n = u64::from_le_bytes(
        buf.get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let header = buf.get(8..8 + n).ok_or_else(bad)?;
    let parsed: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| SteeringError::Format(e.to_string()))?;
    let sorted: std::collections::BTreeMap<String, serde_json::Value> = parsed
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::Object(m) => {
                let inner: std::collections::BTreeMap<String, serde_json::Value> =
                    m.into_iter().collect();
                (k, serde_json::to_value(inner).unwrap_or_default())
            }
            other => (k, other),
        })
        .collect();
    let mut text = serde_json::to_vec(&sorted).map_err(|e| SteeringError::Format(e.to_string()))?;
    if text.len() > n {
        return Err(SteeringError::Format(
            "safetensors header grew when sorted".into(),
        ));
    }
    text.resize(n, b' ');
    buf[8..8 + n].copy_from_slice(&text);
    Ok(buf)
}

/// Parses bytes written by [`vectors_to_safetensors`]; vectors sorted by (method, layer).
pub fn vectors_from_safetensors(buf: &[u8]) -> Result<(Vec<NamedVector>, ModelFingerprint)> {
    let (_, header) = SafeTensors::read_metadata(buf).map_err(st_err)?;
    let meta = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        meta.get(k)
            .ok_or_else(|| SteeringError::Format(format!("safetensors metadata lacks {k:?}")))
    };
    if get("format")? != FORMAT {
        return Err(SteeringError::Format(format!(
            "metadata format is {:?}, expected {FORMAT:?}",
            meta["format"]
        )));
    }
    let num = |k: &str| -> Result<usize> {
        get(k)?
            .parse()
            .map_err(|_| SteeringError::Format(format!("metadata {k} is not an integer")))
    };
    let model = ModelFingerprint {
        hidden_size: num("hidden_size")?,
        n_layers: num("n_layers")?,
        model_hash: get("model_hash")?.clone(),
    };
    let st = SafeTensors::deserialize(buf).map_err(st_err)?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let (method, layer) = parse_name(&name)?;
        if view.dtype() != Dtype::F32 || view.shape() != [model.hidden_size] {
            return Err(SteeringError::Format(format!(
                "{name}: expected F32 of shape [{}], got {:?} {:?}",
                model.hidden_size,
                view.dtype(),
                view.shape()
            )));
        }
        let vector = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(NamedVector {
            method,
            layer,
            vector,
        });
    }
    out.sort_by(|a, b| a.method.cmp(&b.method).then(a.layer.cmp(&b.layer)));
    Ok((out, model))
}

/// Writes `vectors.safetensors` (or any path).
pub fn write_vectors_safetensors(
    path: &Path,
    vectors: &[NamedVector],
    model: &ModelFingerprint,
) -> Result<()> {
    std::fs::write(path, vectors_to_safetensors(vectors, model)?)?;
    Ok(())
}

/// Reads a file written by [`write_vectors_safetensors`].
pub fn read_vectors_safetensors(path: &Path) -> Result<(Vec<NamedVector>, ModelFingerprint)> {
    vectors_from_safetensors(&std::fs::read(path)?)
}

/// `<method>.layer<i>`.
pub fn tensor_name(method: &str, layer: usize) -> String {
    format!("{method}.layer{layer}")
}

fn parse_name(name: &str) -> Result<(String, usize)> {
    name.rsplit_once(".layer")
        .and_then(|(m, l)| Some((m.to_string(), l.parse().ok()?)))
        .filter(|(m, _)| !m.is_empty())
        .ok_or_else(|| {
            SteeringError::Format(format!("tensor name {name:?} is not <method>.layer<i>"))
        })
}

fn st_err(e: safetensors::SafeTensorError) -> SteeringError {
    SteeringError::Format(format!("safetensors: {e}"))
}
