use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use std::collections::BTreeMap;
use std::io::Cursor;
use steerbench_steering::interop::safetensors::{
    read_vectors_safetensors, vectors_from_safetensors, vectors_to_safetensors,
    write_vectors_safetensors, NamedVector,
};
use steerbench_steering::{ControlVector, ModelFingerprint, SteeringError};

fn sample(d: usize) -> ControlVector {
    let mut directions = BTreeMap::new();
    for k in [1usize, 6, 14, 29] {
        // Values that do not survive a lossy conversion (f16 etc.).
        directions.insert(
            k,
            (0..d)
                .map(|i| (i as f32 * 0.001_234_5 + k as f32).sin() * 1e-3 + 1e-7)
                .collect(),
        );
    }
    ControlVector {
        model_hint: "llama".into(),
        directions,
    }
}

#[test]
fn gguf_roundtrip_is_lossless() {
    let cv = sample(576);
    let mut buf = Cursor::new(Vec::new());
    cv.write_to(&mut buf).unwrap();
    buf.set_position(0);
    let back = ControlVector::read_from(&mut buf).unwrap();
    assert_eq!(back, cv);
    for (k, v) in &cv.directions {
        let b = &back.directions[k];
        assert!(v.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    // Through a file too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cv.gguf");
    cv.write_file(&path).unwrap();
    assert_eq!(ControlVector::read_file(&path).unwrap(), cv);
}

#[test]
fn gguf_header_and_metadata_match_llama_cpp_layout() {
    let cv = sample(8);
    let mut buf = Cursor::new(Vec::new());
    cv.write_to(&mut buf).unwrap();
    let bytes = buf.into_inner();
    assert_eq!(&bytes[0..4], b"GGUF");
    let version = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    assert!(version == 2 || version == 3, "GGUF version {version}");
    assert_eq!(
        u64::from_le_bytes(bytes[8..16].try_into().unwrap()),
        4,
        "tensor count"
    );
    assert_eq!(
        u64::from_le_bytes(bytes[16..24].try_into().unwrap()),
        3,
        "metadata count"
    );
    let content = Content::read(&mut Cursor::new(&bytes)).unwrap();
    assert!(
        matches!(content.metadata.get("general.architecture"), Some(Value::String(s)) if s == "controlvector")
    );
    assert!(
        matches!(content.metadata.get("controlvector.model_hint"), Some(Value::String(s)) if s == "llama")
    );
    assert!(matches!(
        content.metadata.get("controlvector.layer_count"),
        Some(Value::U32(4))
    ));
    let mut names: Vec<_> = content.tensor_infos.keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        vec!["direction.1", "direction.14", "direction.29", "direction.6"]
    );
    for info in content.tensor_infos.values() {
        assert_eq!(info.ggml_dtype, GgmlDType::F32);
        assert_eq!(info.shape.dims(), &[8]);
    }
}

#[test]
fn gguf_rejects_what_llama_cpp_rejects() {
    let mut cv = sample(8);
    cv.directions.insert(0, vec![0.0; 8]);
    let err = cv.write_to(&mut Cursor::new(Vec::new())).unwrap_err();
    assert!(err.to_string().contains("direction.0"), "{err}");
    let mut ragged = sample(8);
    ragged.directions.insert(3, vec![0.0; 7]);
    assert!(ragged.write_to(&mut Cursor::new(Vec::new())).is_err());
    let empty = ControlVector {
        model_hint: String::new(),
        directions: BTreeMap::new(),
    };
    assert!(empty.write_to(&mut Cursor::new(Vec::new())).is_err());
    assert!(matches!(
        ControlVector::read_from(&mut Cursor::new(b"not a gguf at all".to_vec())),
        Err(SteeringError::Format(_))
    ));
}

#[test]
fn gguf_with_wrong_architecture_is_refused() {
    use candle_core::quantized::{gguf_file, QTensor};
    use candle_core::{Device, Tensor};
    let t = QTensor::quantize(
        &Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap();
    let arch = Value::String("llama".into());
    let mut buf = Cursor::new(Vec::new());
    gguf_file::write(
        &mut buf,
        &[("general.architecture", &arch)],
        &[("direction.1", &t)],
    )
    .unwrap();
    buf.set_position(0);
    let err = ControlVector::read_from(&mut buf).unwrap_err();
    assert!(err.to_string().contains("controlvector"), "{err}");
}

fn fp() -> ModelFingerprint {
    ModelFingerprint {
        hidden_size: 4,
        n_layers: 30,
        model_hash: "ab12cd34ef56ab12cd34ef56".into(),
    }
}

#[test]
fn safetensors_roundtrip_with_metadata() {
    let vs = vec![
        NamedVector {
            method: "caa".into(),
            layer: 6,
            vector: vec![1.0, -2.0, 3.5, 1e-8],
        },
        NamedVector {
            method: "caa".into(),
            layer: 14,
            vector: vec![0.0, 0.5, -0.25, 7.0],
        },
        NamedVector {
            method: "pca_center".into(),
            layer: 6,
            vector: vec![0.1, 0.2, 0.3, 0.4],
        },
    ];
    let bytes = vectors_to_safetensors(&vs, &fp()).unwrap();
    let (back, model) = vectors_from_safetensors(&bytes).unwrap();
    assert_eq!(model, fp());
    assert_eq!(back, vs);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.safetensors");
    write_vectors_safetensors(&path, &vs, &fp()).unwrap();
    assert_eq!(read_vectors_safetensors(&path).unwrap().0, vs);
    // Tensor names are `<method>.layer<i>`, readable by any safetensors reader.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        vec!["caa.layer14", "caa.layer6", "pca_center.layer6"]
    );
}

/// Regression: the metadata map used to be written in HashMap order, so the same vectors
/// gave different bytes (and manifest hashes) on every run.
#[test]
fn safetensors_bytes_are_identical_across_writes() {
    let vs = vec![NamedVector {
        method: "caa".into(),
        layer: 3,
        vector: vec![1.0, 2.0, 3.0, 4.0],
    }];
    let first = vectors_to_safetensors(&vs, &fp()).unwrap();
    for _ in 0..32 {
        assert_eq!(vectors_to_safetensors(&vs, &fp()).unwrap(), first);
    }
    assert_eq!(vectors_from_safetensors(&first).unwrap().0, vs);
    safetensors::SafeTensors::deserialize(&first).unwrap();
}

#[test]
fn safetensors_rejects_bad_input() {
    let bad_len = [NamedVector {
        method: "caa".into(),
        layer: 1,
        vector: vec![1.0],
    }];
    assert!(vectors_to_safetensors(&bad_len, &fp()).is_err());
    let dup = [
        NamedVector {
            method: "caa".into(),
            layer: 1,
            vector: vec![0.0; 4],
        },
        NamedVector {
            method: "caa".into(),
            layer: 1,
            vector: vec![1.0; 4],
        },
    ];
    assert!(vectors_to_safetensors(&dup, &fp()).is_err());
    let dotted = [NamedVector {
        method: "a.b".into(),
        layer: 1,
        vector: vec![0.0; 4],
    }];
    assert!(vectors_to_safetensors(&dotted, &fp()).is_err());
    assert!(vectors_from_safetensors(b"garbage").is_err());
}

#[test]
fn fingerprint_mismatch_is_a_clear_error() {
    let made_for = ModelFingerprint {
        hidden_size: 576,
        n_layers: 30,
        model_hash: "0123456789abcdef0123".into(),
    };
    assert!(made_for.check_compatible(&made_for.clone()).is_ok());
    let other = ModelFingerprint {
        hidden_size: 640,
        n_layers: 18,
        model_hash: "fedcba9876543210fedc".into(),
    };
    let msg = made_for.check_compatible(&other).unwrap_err().to_string();
    assert_eq!(
        msg,
        "vector was computed for a model with hidden size 576 and 30 layers (hash 0123456789ab), \
         this model has hidden size 640 and 18 layers (hash fedcba987654)"
    );
    // Same shape, different weights: still refused.
    let retrained = ModelFingerprint {
        model_hash: "ffff".into(),
        ..made_for.clone()
    };
    assert!(made_for.check_compatible(&retrained).is_err());
}

#[test]
fn fingerprint_checks_vector_length() {
    assert!(fp().check_vector(&[0.0; 4]).is_ok());
    let msg = fp().check_vector(&[0.0; 3]).unwrap_err().to_string();
    assert!(
        msg.contains("length 3") && msg.contains("hidden size 4"),
        "{msg}"
    );
}
