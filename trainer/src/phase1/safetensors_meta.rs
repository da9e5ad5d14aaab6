//! safetensors with a `__metadata__` header (string -> string), which tch's writer lacks:
//! writing (float32 / int64 tensors, atomically via temp file + rename) and reading the metadata.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tch::{Device, Kind, Tensor};

use crate::image_io::write_atomic;

/// Serialises `pairs` (float32 or int64, any device) with `metadata` and writes `out` atomically.
pub fn write(
    pairs: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
    out: &Path,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!(metadata));
    let mut data: Vec<u8> = Vec::new();
    for (k, t) in pairs {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let (dtype, bytes): (&str, Vec<u8>) = match t.kind() {
            Kind::Float => {
                let v = Vec::<f32>::try_from(t.view(-1))?;
                ("F32", v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
            Kind::Int64 => {
                let v = Vec::<i64>::try_from(t.view(-1))?;
                ("I64", v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
            other => bail!("tensor {k:?}: unsupported kind {other:?} for safetensors export"),
        };
        let start = data.len();
        data.extend_from_slice(&bytes);
        header.insert(
            k.clone(),
            json!({"dtype": dtype, "shape": t.size(), "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&Value::Object(header))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut file = Vec::with_capacity(8 + h.len() + data.len());
    file.extend_from_slice(&(h.len() as u64).to_le_bytes());
    file.extend_from_slice(&h);
    file.extend_from_slice(&data);
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_atomic(out, &file)
}

/// The `__metadata__` of a safetensors file (empty when it has none).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .with_context(|| format!("{}: not a safetensors file (too short)", path.display()))?;
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 {
        bail!(
            "{}: not a safetensors file (header length {n})",
            path.display()
        );
    }
    let mut h = vec![0u8; n as usize];
    f.read_exact(&mut h)
        .with_context(|| format!("{}: truncated safetensors header", path.display()))?;
    let v: Value = serde_json::from_slice(&h)
        .with_context(|| format!("{}: safetensors header is not JSON", path.display()))?;
    Ok(v.get("__metadata__")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default())
}
