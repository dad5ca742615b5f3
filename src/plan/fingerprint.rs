//! Stable content fingerprints: blake3 over a canonical encoding of exactly
//! what a stage declares. Maps are encoded in sorted key order and floats by
//! their bits, so YAML key order, comments and `1` vs `1.0` never matter.

use serde_json::Value;

/// Canonical, unambiguous byte encoding of a JSON value (type tag + length prefixes).
pub fn canonical_bytes(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => {
            out.push(b'b');
            out.push(*b as u8);
        }
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(b'u');
                out.extend_from_slice(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            } else {
                out.push(b'f');
                let f = n.as_f64().unwrap_or(f64::NAN);
                // -0.0 and 0.0 mean the same multiplier.
                let f = if f == 0.0 { 0.0 } else { f };
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(b's');
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.push(b'a');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                canonical_bytes(it, out);
            }
        }
        Value::Object(m) => {
            out.push(b'o');
            out.extend_from_slice(&(m.len() as u64).to_le_bytes());
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                canonical_bytes(&Value::String(k.clone()), out);
                canonical_bytes(&m[k], out);
            }
        }
    }
}

/// Full 64-hex-digit blake3 fingerprint of a serializable value.
pub fn fingerprint_of<T: serde::Serialize>(v: &T) -> String {
    let value = serde_json::to_value(v).expect("fingerprint inputs serialize to JSON");
    let mut bytes = Vec::new();
    canonical_bytes(&value, &mut bytes);
    blake3::hash(&bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter_but_values_do() {
        let a = fingerprint_of(&json!({"x": 1, "y": [1.5, 2.0]}));
        let b = fingerprint_of(&json!({"y": [1.5, 2.0], "x": 1}));
        let c = fingerprint_of(&json!({"y": [1.5, 2.5], "x": 1}));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn types_are_distinguished() {
        assert_ne!(fingerprint_of(&json!("1")), fingerprint_of(&json!(1)));
        assert_ne!(fingerprint_of(&json!(1)), fingerprint_of(&json!(1.0)));
        assert_eq!(fingerprint_of(&json!(0.0)), fingerprint_of(&json!(-0.0)));
    }
}
