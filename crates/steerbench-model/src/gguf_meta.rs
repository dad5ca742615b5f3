//! Typed reads of GGUF metadata values (a leaf module: the family files and the GGUF
//! loader both use it).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

pub(crate) fn meta<'a>(
    m: &'a HashMap<String, Value>,
    key: &str,
) -> std::result::Result<&'a Value, String> {
    m.get(key)
        .ok_or_else(|| format!("missing metadata key `{key}`"))
}

pub(crate) fn meta_str<'a>(
    m: &'a HashMap<String, Value>,
    key: &str,
) -> std::result::Result<&'a str, String> {
    meta(m, key)?
        .to_string()
        .map(String::as_str)
        .map_err(|e| format!("metadata `{key}`: {e}"))
}

/// Integer metadata of any integer width (writers differ: u32, u64, i32 all occur).
pub(crate) fn meta_usize(
    m: &HashMap<String, Value>,
    key: &str,
) -> std::result::Result<usize, String> {
    let v = meta(m, key)?;
    let n: i128 = match v {
        Value::U8(x) => *x as i128,
        Value::I8(x) => *x as i128,
        Value::U16(x) => *x as i128,
        Value::I16(x) => *x as i128,
        Value::U32(x) => *x as i128,
        Value::I32(x) => *x as i128,
        Value::U64(x) => *x as i128,
        Value::I64(x) => *x as i128,
        other => {
            return Err(format!(
                "metadata `{key}`: expected an integer, found {other:?}"
            ))
        }
    };
    usize::try_from(n).map_err(|_| format!("metadata `{key}`: {n} is not a valid size"))
}

/// Float metadata, printed through f32's shortest form so `1e-5` stored as f32 stays `1e-5`.
pub(crate) fn meta_f64(m: &HashMap<String, Value>, key: &str) -> std::result::Result<f64, String> {
    match meta(m, key)? {
        Value::F32(x) => Ok(format!("{x}").parse::<f64>().unwrap_or(*x as f64)),
        Value::F64(x) => Ok(*x),
        other => match meta_usize(m, key) {
            Ok(n) => Ok(n as f64),
            Err(_) => Err(format!(
                "metadata `{key}`: expected a float, found {other:?}"
            )),
        },
    }
}

/// The metadata of one architecture: keys are read as `{arch}.{key}`.
pub(crate) struct ArchMeta<'a> {
    pub m: &'a HashMap<String, Value>,
    pub arch: &'a str,
}

impl ArchMeta<'_> {
    pub(crate) fn usize(&self, key: &str) -> Option<usize> {
        meta_usize(self.m, &format!("{}.{key}", self.arch)).ok()
    }

    pub(crate) fn f64(&self, key: &str) -> Option<f64> {
        meta_f64(self.m, &format!("{}.{key}", self.arch)).ok()
    }

    pub(crate) fn value(&self, key: &str) -> Option<&Value> {
        self.m.get(&format!("{}.{key}", self.arch))
    }
}
