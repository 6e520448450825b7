//! The header of a safetensors file: an 8-byte little-endian length, then a JSON object with
//! one entry per tensor and an optional `__metadata__` map of strings. Read and checked here
//! without loading any tensor, so a truncated or foreign file is refused with its name.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// The JSON header of the safetensors bytes `bytes` read from `path` (named in errors).
pub fn header(bytes: &[u8], path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let not_st = |why: String| Error::checkpoint(path, format!("not a safetensors file: {why}"));
    if bytes.len() < 8 {
        return Err(not_st(format!(
            "{} bytes, shorter than the 8-byte header length",
            bytes.len()
        )));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > (bytes.len() - 8) as u64 {
        return Err(not_st(format!(
            "header length {n} is beyond the end of the file ({} bytes): truncated or another format",
            bytes.len()
        )));
    }
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n as usize])
        .map_err(|e| not_st(format!("header is not JSON ({e})")))?;
    match header {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(not_st("header is not a JSON object".into())),
    }
}

/// The `__metadata__` map of the safetensors file at `path` (empty when it has none).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = super::read_file(path, super::Limit::WEIGHTS)?;
    Ok(metadata(&header(&bytes, path)?))
}

/// The `__metadata__` map of a parsed header (empty when it has none).
pub fn metadata(header: &serde_json::Map<String, serde_json::Value>) -> HashMap<String, String> {
    header
        .get("__metadata__")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_short_truncated_and_non_json_headers() {
        let p = Path::new("x.safetensors");
        assert!(header(b"abc", p)
            .unwrap_err()
            .to_string()
            .contains("shorter"));
        let mut b = 100u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert!(header(&b, p).unwrap_err().to_string().contains("truncated"));
        let mut b = 2u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"[]");
        assert!(header(&b, p)
            .unwrap_err()
            .to_string()
            .contains("JSON object"));
        let json = br#"{"__metadata__":{"a":"b"}}"#;
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(json);
        assert_eq!(metadata(&header(&b, p).unwrap())["a"], "b");
    }
}
