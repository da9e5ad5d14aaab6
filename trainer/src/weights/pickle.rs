//! A small, safe Python pickle reader (protocols 2-5): it never executes anything; `GLOBAL`s and
//! `REDUCE`s become inert [`Value::Global`] / [`Value::Call`] nodes that the format-specific readers
//! (legacy torch files, pickled numpy dicts) interpret. Persistent ids stay [`Value::PersId`].
use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{Context, Result, bail};

/// A shared, mutable pickle value (pickle mutates containers after memoising them).
pub type Obj = Rc<RefCell<Value>>;

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Obj>),
    List(Vec<Obj>),
    /// Also used for `collections.OrderedDict` (insertion order kept).
    Dict(Vec<(Obj, Obj)>),
    Global {
        module: String,
        name: String,
    },
    /// `func(*args)` not evaluated; `state` from a later `BUILD`, `items` from `SETITEMS`/`APPENDS`.
    Call {
        func: Obj,
        args: Obj,
        state: Option<Obj>,
        items: Vec<Obj>,
    },
    PersId(Obj),
    Mark,
}

pub fn obj(v: Value) -> Obj {
    Rc::new(RefCell::new(v))
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    /// `module.name` of a global, or of the function of a call.
    pub fn global_name(&self) -> Option<String> {
        match self {
            Value::Global { module, name } => Some(format!("{module}.{name}")),
            Value::Call { func, .. } => func.borrow().global_name(),
            _ => None,
        }
    }
    /// Look a string key up in a dict.
    pub fn dict_get(&self, key: &str) -> Option<Obj> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.borrow().as_str() == Some(key))
                .map(|(_, v)| v.clone()),
            _ => None,
        }
    }
    pub fn seq(&self) -> Option<&[Obj]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }
}

/// Reads one pickle from `data[*pos..]`, advancing `pos` past its STOP opcode.
pub fn read_pickle(data: &[u8], pos: &mut usize) -> Result<Obj> {
    let mut r = Reader { data, pos: *pos };
    let v = r.run()?;
    *pos = r.pos;
    Ok(v)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.pos + n > self.data.len() {
            bail!("truncated pickle: wanted {n} bytes at offset {}", self.pos);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn line(&mut self) -> Result<String> {
        let start = self.pos;
        while self.u8()? != b'\n' {}
        Ok(String::from_utf8_lossy(&self.data[start..self.pos - 1]).into_owned())
    }
    fn string(&mut self, n: usize) -> Result<Value> {
        Ok(Value::Str(
            String::from_utf8(self.take(n)?.to_vec()).context("pickle string is not UTF-8")?,
        ))
    }

    fn run(&mut self) -> Result<Obj> {
        let mut stack: Vec<Obj> = Vec::new();
        let mut memo: std::collections::HashMap<u32, Obj> = Default::default();
        let pop_mark = |stack: &mut Vec<Obj>| -> Result<Vec<Obj>> {
            let m = stack
                .iter()
                .rposition(|o| matches!(*o.borrow(), Value::Mark))
                .context("pickle MARK missing")?;
            let items = stack.split_off(m + 1);
            stack.pop();
            Ok(items)
        };
        fn pop(stack: &mut Vec<Obj>) -> Result<Obj> {
            stack.pop().context("pickle stack underflow")
        }
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME
                }
                b'.' => return pop(&mut stack), // STOP
                b'(' => stack.push(obj(Value::Mark)),
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    stack.push(obj(Value::Int(v)))
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    stack.push(obj(Value::Int(v)))
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    stack.push(obj(Value::Int(v)))
                }
                0x8a => {
                    // LONG1: little-endian two's complement; values beyond i64 (e.g. torch's
                    // magic number) are truncated to their low 64 bits.
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    let mut buf = [if b.last().is_some_and(|x| x & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    }; 8];
                    for (i, x) in b.iter().take(8).enumerate() {
                        buf[i] = *x;
                    }
                    stack.push(obj(Value::Int(i64::from_le_bytes(buf))))
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.parse().with_context(|| format!("bad INT {s:?}"))?),
                    };
                    stack.push(obj(v))
                }
                b'N' => stack.push(obj(Value::None)),
                0x88 => stack.push(obj(Value::Bool(true))),
                0x89 => stack.push(obj(Value::Bool(false))),
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into()?);
                    stack.push(obj(Value::Float(v)))
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    stack.push(obj(v))
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    stack.push(obj(v))
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let v = self.string(n)?;
                    stack.push(obj(v))
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = Value::Bytes(self.take(n)?.to_vec());
                    stack.push(obj(v))
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let v = Value::Bytes(self.take(n)?.to_vec());
                    stack.push(obj(v))
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = Value::Bytes(self.take(n)?.to_vec());
                    stack.push(obj(v))
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let v = Value::Bytes(self.take(n)?.to_vec());
                    stack.push(obj(v))
                }
                0x8e => {
                    let n = self.u64()? as usize;
                    let v = Value::Bytes(self.take(n)?.to_vec());
                    stack.push(obj(v))
                }
                b')' => stack.push(obj(Value::Tuple(vec![]))),
                b't' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(obj(Value::Tuple(items)))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        bail!("pickle stack underflow at offset {at}");
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(obj(Value::Tuple(items)))
                }
                b']' => stack.push(obj(Value::List(vec![]))),
                b'l' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(obj(Value::List(items)))
                }
                b'a' => {
                    let v = pop(&mut stack)?;
                    let l = stack.last().context("APPEND on empty stack")?;
                    append(l, vec![v])?;
                }
                b'e' => {
                    let items = pop_mark(&mut stack)?;
                    let l = stack.last().context("APPENDS on empty stack")?;
                    append(l, items)?;
                }
                b'}' => stack.push(obj(Value::Dict(vec![]))),
                b'd' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(obj(Value::Dict(pairs(items)?)))
                }
                b's' => {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    let d = stack.last().context("SETITEM on empty stack")?;
                    set_items(d, vec![(k, v)])?;
                }
                b'u' => {
                    let items = pop_mark(&mut stack)?;
                    let d = stack.last().context("SETITEMS on empty stack")?;
                    set_items(d, pairs(items)?)?;
                }
                0x8f => stack.push(obj(Value::List(vec![]))), // EMPTY_SET (as a list)
                0x90 => {
                    let items = pop_mark(&mut stack)?;
                    let s = stack.last().context("ADDITEMS on empty stack")?;
                    append(s, items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    stack.push(obj(Value::Global { module, name }))
                }
                0x93 => {
                    let name = pop(&mut stack)?;
                    let module = pop(&mut stack)?;
                    let (module, name) = (
                        module
                            .borrow()
                            .as_str()
                            .context("STACK_GLOBAL module")?
                            .to_string(),
                        name.borrow()
                            .as_str()
                            .context("STACK_GLOBAL name")?
                            .to_string(),
                    );
                    stack.push(obj(Value::Global { module, name }))
                }
                b'R' | 0x81 => {
                    // REDUCE / NEWOBJ
                    let args = pop(&mut stack)?;
                    let func = pop(&mut stack)?;
                    let name = func.borrow().global_name().unwrap_or_default();
                    let v = if name == "collections.OrderedDict" {
                        Value::Dict(vec![])
                    } else {
                        Value::Call {
                            func,
                            args,
                            state: None,
                            items: vec![],
                        }
                    };
                    stack.push(obj(v))
                }
                b'b' => {
                    let state = pop(&mut stack)?;
                    let target = stack.last().context("BUILD on empty stack")?;
                    let mut t = target.borrow_mut();
                    match &mut *t {
                        Value::Call { state: s, .. } => *s = Some(state),
                        Value::Dict(items) => {
                            if let Value::Dict(more) = &*state.borrow() {
                                items.extend(more.iter().cloned())
                            }
                        }
                        other => bail!("BUILD on unsupported value {other:?} at offset {at}"),
                    }
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    memo.insert(i, stack.last().context("BINPUT on empty stack")?.clone());
                }
                b'r' => {
                    let i = self.u32()?;
                    memo.insert(
                        i,
                        stack.last().context("LONG_BINPUT on empty stack")?.clone(),
                    );
                }
                b'p' => {
                    let i: u32 = self.line()?.parse().context("bad PUT index")?;
                    memo.insert(i, stack.last().context("PUT on empty stack")?.clone());
                }
                0x94 => {
                    let i = memo.len() as u32;
                    memo.insert(i, stack.last().context("MEMOIZE on empty stack")?.clone());
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    stack.push(
                        memo.get(&i)
                            .with_context(|| format!("memo {i} missing"))?
                            .clone(),
                    )
                }
                b'j' => {
                    let i = self.u32()?;
                    stack.push(
                        memo.get(&i)
                            .with_context(|| format!("memo {i} missing"))?
                            .clone(),
                    )
                }
                b'g' => {
                    let i: u32 = self.line()?.parse().context("bad GET index")?;
                    stack.push(
                        memo.get(&i)
                            .with_context(|| format!("memo {i} missing"))?
                            .clone(),
                    )
                }
                b'Q' => {
                    let pid = pop(&mut stack)?;
                    stack.push(obj(Value::PersId(pid)))
                }
                b'0' => {
                    pop(&mut stack)?;
                }
                b'1' => {
                    pop_mark(&mut stack)?;
                }
                b'2' => {
                    let top = stack.last().context("DUP on empty stack")?.clone();
                    stack.push(top)
                }
                _ => bail!("unsupported pickle opcode 0x{op:02x} at offset {at}"),
            }
        }
    }
}

fn pairs(items: Vec<Obj>) -> Result<Vec<(Obj, Obj)>> {
    if !items.len().is_multiple_of(2) {
        bail!("odd number of dict items in pickle");
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn append(target: &Obj, items: Vec<Obj>) -> Result<()> {
    match &mut *target.borrow_mut() {
        Value::List(v) => v.extend(items),
        Value::Call { items: v, .. } => v.extend(items),
        other => bail!("APPEND to unsupported value {other:?}"),
    }
    Ok(())
}

fn set_items(target: &Obj, kv: Vec<(Obj, Obj)>) -> Result<()> {
    match &mut *target.borrow_mut() {
        Value::Dict(items) => {
            for (k, v) in kv {
                let key = k.borrow().as_str().map(str::to_string);
                if let Some(key) = key
                    && let Some(slot) = items
                        .iter_mut()
                        .find(|(ek, _)| ek.borrow().as_str() == Some(&key))
                {
                    slot.1 = v;
                    continue;
                }
                items.push((k, v));
            }
        }
        Value::Call { items, .. } => items.extend(kv.into_iter().flat_map(|(k, v)| [k, v])),
        other => bail!("SETITEM on unsupported value {other:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protocol2_dict_with_memo() {
        // pickle.dumps({'a': [1, 2], 'b': 'x'}, protocol=2) from CPython 3.11
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01K\x02eX\x01\x00\x00\x00bq\x03X\x01\x00\x00\x00xq\x04u.";
        let mut pos = 0;
        let v = read_pickle(data, &mut pos).unwrap();
        assert_eq!(pos, data.len());
        let v = v.borrow();
        let a = v.dict_get("a").unwrap();
        let a = a.borrow();
        let items: Vec<i64> = a
            .seq()
            .unwrap()
            .iter()
            .map(|o| o.borrow().as_int().unwrap())
            .collect();
        assert_eq!(items, vec![1, 2]);
        assert_eq!(v.dict_get("b").unwrap().borrow().as_str(), Some("x"));
    }

    #[test]
    fn rejects_truncated_and_unknown() {
        let mut pos = 0;
        assert!(read_pickle(b"\x80\x02}q\x00(X\x05\x00\x00\x00ab", &mut pos).is_err());
        let mut pos = 0;
        let e = read_pickle(b"\x80\x02\xff", &mut pos)
            .unwrap_err()
            .to_string();
        assert!(e.contains("0xff"), "{e}");
    }
}
