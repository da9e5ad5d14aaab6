//! Reader for PyTorch's legacy (pre-1.6, non-zip) serialisation, as used by the authors' `Ds_*.pth`:
//! five pickles (magic number, protocol version, sys info, the object, the storage keys) followed by
//! the raw storages, each an int64 element count and the little-endian data. Whole pickled
//! `nn.Module`s are walked through `_parameters`, `_buffers` and `_modules` into a flat state dict.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tch::{Kind, Tensor};

use super::pickle::{Obj, Value, read_pickle};

const MAGIC: i64 = 0x1950a86a20f9469cfc6c_i128 as i64; // low 64 bits of torch's MAGIC_NUMBER

/// Reads a legacy torch file into `(name, tensor)` pairs (CPU, original dtypes), in module order.
/// A pickled list of modules gives names `"{index}.{module path}"`; a dict of tensors its own keys.
pub fn read_legacy_torch(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_legacy_torch(&data).with_context(|| {
        format!(
            "{}: not a readable legacy (pre-zip) PyTorch file",
            path.display()
        )
    })
}

pub fn parse_legacy_torch(data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    if data.starts_with(b"PK") {
        bail!(
            "this is a zip-format torch file (torch >= 1.6); load it with the zip/safetensors path instead"
        );
    }
    let mut pos = 0;
    let magic = read_pickle(data, &mut pos).context("magic number")?;
    if magic.borrow().as_int() != Some(MAGIC) {
        bail!("bad magic number (not a torch legacy file)");
    }
    let proto = read_pickle(data, &mut pos)?.borrow().as_int();
    if proto != Some(1001) {
        bail!("unsupported torch protocol version {proto:?}, expected 1001");
    }
    let sys = read_pickle(data, &mut pos)?;
    let little = sys
        .borrow()
        .dict_get("little_endian")
        .map(|v| v.borrow().as_int() == Some(1));
    if little == Some(false) {
        bail!("big-endian torch files are not supported");
    }
    let root = read_pickle(data, &mut pos).context("main object")?;
    let keys = read_pickle(data, &mut pos).context("storage key list")?;

    // Collect storages referenced by persistent ids: key -> (dtype, numel).
    let mut storages: HashMap<String, (Kind, usize)> = HashMap::new();
    collect_storages(&root, &mut storages, 0)?;
    let mut raw: HashMap<String, Tensor> = HashMap::new();
    let keys = keys.borrow();
    for k in keys.seq().context("storage keys are not a list")? {
        let key = key_string(&k.borrow())?;
        let (kind, _) = *storages
            .get(&key)
            .with_context(|| format!("storage {key} not referenced"))?;
        if pos + 8 > data.len() {
            bail!("truncated file: storage {key} header missing");
        }
        let numel = u64::from_le_bytes(data[pos..pos + 8].try_into()?) as usize;
        pos += 8;
        let nbytes = numel * kind.elt_size_in_bytes();
        if pos + nbytes > data.len() {
            bail!("truncated file: storage {key} needs {nbytes} bytes at offset {pos}");
        }
        let t = Tensor::from_data_size(&data[pos..pos + nbytes], &[numel as i64], kind);
        pos += nbytes;
        raw.insert(key, t);
    }

    let mut out = Vec::new();
    let root = root.borrow();
    match &*root {
        Value::List(items) | Value::Tuple(items) => {
            for (i, m) in items.iter().enumerate() {
                walk(m, &format!("{i}."), &raw, &mut out)?;
            }
        }
        Value::Dict(items) => {
            // A plain state dict of tensors.
            for (k, t) in items {
                let name = key_string(&k.borrow())?;
                out.push((name.clone(), rebuild_tensor(t, &raw).context(name)?));
            }
        }
        Value::Call { .. } => walk_module_root(&root, &raw, &mut out)?,
        other => bail!("unsupported top-level object {}", short(other)),
    }
    if out.is_empty() {
        bail!("no tensors found");
    }
    Ok(out)
}

fn walk_module_root(
    root: &Value,
    raw: &HashMap<String, Tensor>,
    out: &mut Vec<(String, Tensor)>,
) -> Result<()> {
    let o = super::pickle::obj(root.clone());
    walk(&o, "", raw, out)
}

fn key_string(v: &Value) -> Result<String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        other => bail!("unexpected storage key {other:?}"),
    }
}

fn storage_kind(type_name: &str) -> Result<Kind> {
    Ok(match type_name {
        "torch.FloatStorage" => Kind::Float,
        "torch.DoubleStorage" => Kind::Double,
        "torch.HalfStorage" => Kind::Half,
        "torch.BFloat16Storage" => Kind::BFloat16,
        "torch.LongStorage" => Kind::Int64,
        "torch.IntStorage" => Kind::Int,
        "torch.ShortStorage" => Kind::Int16,
        "torch.CharStorage" => Kind::Int8,
        "torch.ByteStorage" => Kind::Uint8,
        "torch.BoolStorage" => Kind::Bool,
        other => bail!("unsupported storage type {other}"),
    })
}

/// `('storage', StorageType, key, location, numel[, view_metadata])`
fn parse_persid(pid: &Obj) -> Result<(String, Kind, usize)> {
    let pid = pid.borrow();
    let t = pid.seq().context("persistent id is not a tuple")?;
    if t.len() < 5 || t[0].borrow().as_str() != Some("storage") {
        bail!("unsupported persistent id {pid:?}");
    }
    let ty = t[1].borrow().global_name().context("storage type")?;
    let kind = storage_kind(&ty)?;
    let key = key_string(&t[2].borrow())?;
    let numel = t[4].borrow().as_int().context("storage size")? as usize;
    Ok((key, kind, numel))
}

fn collect_storages(o: &Obj, out: &mut HashMap<String, (Kind, usize)>, depth: usize) -> Result<()> {
    if depth > 64 {
        bail!("object nesting too deep");
    }
    let v = o.borrow();
    match &*v {
        Value::PersId(pid) => {
            let (k, kind, n) = parse_persid(pid)?;
            out.insert(k, (kind, n));
        }
        Value::Tuple(items) | Value::List(items) => {
            for i in items {
                collect_storages(i, out, depth + 1)?
            }
        }
        Value::Dict(items) => {
            for (_, i) in items {
                collect_storages(i, out, depth + 1)?
            }
        }
        Value::Call {
            args, state, items, ..
        } => {
            collect_storages(args, out, depth + 1)?;
            if let Some(s) = state {
                collect_storages(s, out, depth + 1)?
            }
            for i in items {
                collect_storages(i, out, depth + 1)?
            }
        }
        _ => {}
    }
    Ok(())
}

/// Turns a `_rebuild_tensor_v2` / `_rebuild_parameter` call into a tensor.
fn rebuild_tensor(o: &Obj, raw: &HashMap<String, Tensor>) -> Result<Tensor> {
    let v = o.borrow();
    let Value::Call { func, args, .. } = &*v else {
        bail!("expected a tensor, got {v:?}")
    };
    let name = func.borrow().global_name().unwrap_or_default();
    let args = args.borrow();
    let a = args.seq().context("tensor args")?;
    match name.as_str() {
        "torch._utils._rebuild_parameter" => rebuild_tensor(&a[0], raw),
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
            let Value::PersId(pid) = &*a[0].borrow() else {
                bail!("tensor without storage")
            };
            let (key, _, _) = parse_persid(pid)?;
            let storage = raw
                .get(&key)
                .with_context(|| format!("storage {key} has no data"))?;
            let offset = a[1].borrow().as_int().context("storage offset")?;
            let ints = |o: &Obj| -> Result<Vec<i64>> {
                o.borrow()
                    .seq()
                    .context("size/stride")?
                    .iter()
                    .map(|x| x.borrow().as_int().context("size/stride entry"))
                    .collect()
            };
            let size = ints(&a[2])?;
            let stride = ints(&a[3])?;
            let needed = offset
                + size
                    .iter()
                    .zip(&stride)
                    .map(|(s, st)| (s - 1).max(0) * st)
                    .sum::<i64>()
                + 1;
            if size.iter().all(|&s| s > 0) && needed > storage.numel() as i64 {
                bail!("tensor view exceeds its storage {key}");
            }
            Ok(storage
                .as_strided(&size, &stride, Some(offset))
                .contiguous())
        }
        other => bail!("unsupported tensor constructor {other}"),
    }
}

/// Walks a pickled nn.Module (`NEWOBJ` + `BUILD` with its `__dict__`).
fn walk(
    m: &Obj,
    prefix: &str,
    raw: &HashMap<String, Tensor>,
    out: &mut Vec<(String, Tensor)>,
) -> Result<()> {
    let v = m.borrow();
    let state = match &*v {
        Value::Call { state: Some(s), .. } => s.clone(),
        other => bail!(
            "expected a pickled module at {prefix:?}, got {}",
            short(other)
        ),
    };
    let state = state.borrow();
    for field in ["_parameters", "_buffers"] {
        if let Some(d) = state.dict_get(field)
            && let Value::Dict(items) = &*d.borrow()
        {
            for (k, t) in items {
                if matches!(*t.borrow(), Value::None) {
                    continue;
                }
                let name = format!("{prefix}{}", k.borrow().as_str().context("param name")?);
                let tensor = rebuild_tensor(t, raw).with_context(|| name.clone())?;
                out.push((name, tensor));
            }
        }
    }
    if let Some(d) = state.dict_get("_modules")
        && let Value::Dict(items) = &*d.borrow()
    {
        for (k, sub) in items {
            if matches!(*sub.borrow(), Value::None) {
                continue;
            }
            let name = k.borrow().as_str().context("module name")?.to_string();
            walk(sub, &format!("{prefix}{name}."), raw, out)?;
        }
    }
    Ok(())
}

fn short(v: &Value) -> String {
    let s = format!("{v:?}");
    s.chars().take(80).collect()
}
