//! `--set key.path=VALUE` overrides of TOML recipes, shared by `jndlab-train` (training recipes) and
//! `jndlab` (pipeline recipes): the value is parsed as TOML, and a bare word that is not TOML is taken as a
//! string, so `--set loss=l1` and `--set optim.lr=1e-4` both work.
use anyhow::{Context, Result, bail};

/// Applies one `key=value` (dotted key) to `table`, creating intermediate tables.
pub fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let (key, raw) = set
        .split_once('=')
        .with_context(|| format!("--set {set:?}: expected KEY=VALUE, e.g. optim.lr=1e-4"))?;
    let (key, raw) = (key.trim(), raw.trim());
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").context("parsed value")?,
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {set:?}: bad key {key:?}");
    }
    let mut t = table;
    for p in &parts[..parts.len() - 1] {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .with_context(|| format!("--set {set:?}: {p} is not a table"))?;
    }
    t.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::apply_set;

    #[test]
    fn sets_values_tables_and_bare_words() {
        let mut t: toml::Table = toml::from_str("a = 1\n[optim]\nlr = 0.1").unwrap();
        apply_set(&mut t, "optim.lr=1e-4").unwrap();
        apply_set(&mut t, "loss=l1").unwrap();
        apply_set(&mut t, "run.out = \"x y\"").unwrap();
        apply_set(&mut t, "list=[1, 2]").unwrap();
        assert_eq!(t["optim"]["lr"].as_float(), Some(1e-4));
        assert_eq!(t["loss"].as_str(), Some("l1"));
        assert_eq!(t["run"]["out"].as_str(), Some("x y"));
        assert_eq!(t["list"].as_array().map(|a| a.len()), Some(2));
        assert!(
            apply_set(&mut t, "noequals")
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
        assert!(
            apply_set(&mut t, "a.b=1")
                .unwrap_err()
                .to_string()
                .contains("a is not a table")
        );
        assert!(
            apply_set(&mut t, "x..y=1")
                .unwrap_err()
                .to_string()
                .contains("bad key")
        );
    }
}
