//! Loss spec strings: terms joined by `+`, each `[WEIGHT*]NAME[:ARG]`, e.g. `l2+1.0*vgg`,
//! `l2+0.1*lpips:alex`, `mdf:sisr`, `vgg:relu2_2,relu3_3`. A registered name that itself contains
//! `+` (`ms-ssim+l1`, Zhao et al.'s mix) is matched first, longest name first; write
//! `ms-ssim+1*l1` for a plain sum of MS-SSIM and L1.
use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub weight: f64,
    pub name: String,
    pub arg: Option<String>,
}

/// Parses `spec` against the registered `names` (canonical names and aliases, lower case).
pub fn parse(spec: &str, names: &[&str]) -> Result<Vec<Term>> {
    // Names match case-insensitively; arguments (file paths) keep their case.
    let orig: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    let s = orig.to_ascii_lowercase();
    if s.is_empty() {
        bail!("empty loss spec");
    }
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut terms = Vec::new();
    let mut rest = s.as_str();
    loop {
        // optional weight
        let mut weight = 1.0;
        if let Some(star) = rest.find('*') {
            let head = &rest[..star];
            if !head.contains('+') && !head.contains(':') {
                weight = head.parse::<f64>().map_err(|_| {
                    anyhow::anyhow!(
                        "loss spec {spec:?}: bad weight {head:?} (expected a number before '*')"
                    )
                })?;
                if !weight.is_finite() {
                    bail!("loss spec {spec:?}: weight {head:?} is not finite");
                }
                rest = &rest[star + 1..];
            }
        }
        let name = sorted
            .iter()
            .find(|n| {
                rest.starts_with(**n)
                    && matches!(rest.as_bytes().get(n.len()), None | Some(b'+') | Some(b':'))
            })
            .ok_or_else(|| {
                let got = rest.split(['+', ':']).next().unwrap_or(rest);
                anyhow::anyhow!(
                    "loss spec {spec:?}: unknown loss {got:?}; known: {}",
                    names.join(", ")
                )
            })?;
        rest = &rest[name.len()..];
        let mut arg = None;
        if let Some(r) = rest.strip_prefix(':') {
            let end = r.find('+').unwrap_or(r.len());
            if end == 0 {
                bail!("loss spec {spec:?}: empty argument after '{name}:'");
            }
            let at = s.len() - r.len();
            arg = Some(orig[at..at + end].to_string());
            rest = &r[end..];
        }
        terms.push(Term {
            weight,
            name: name.to_string(),
            arg,
        });
        if rest.is_empty() {
            break;
        }
        rest = rest.strip_prefix('+').expect("terms are separated by '+'");
        if rest.is_empty() {
            bail!("loss spec {spec:?}: trailing '+'");
        }
    }
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    const N: &[&str] = &[
        "l1",
        "l2",
        "mse",
        "ssim",
        "ms-ssim",
        "ms-ssim+l1",
        "vgg",
        "lpips",
        "mdf",
    ];

    fn t(w: f64, n: &str, a: Option<&str>) -> Term {
        Term {
            weight: w,
            name: n.into(),
            arg: a.map(String::from),
        }
    }

    #[test]
    fn parses_examples() {
        assert_eq!(
            parse("l2+1.0*vgg", N).unwrap(),
            vec![t(1.0, "l2", None), t(1.0, "vgg", None)]
        );
        assert_eq!(
            parse("mdf:sisr", N).unwrap(),
            vec![t(1.0, "mdf", Some("sisr"))]
        );
        assert_eq!(
            parse("ms-ssim+l1", N).unwrap(),
            vec![t(1.0, "ms-ssim+l1", None)]
        );
        assert_eq!(
            parse("ms-ssim+1*l1", N).unwrap(),
            vec![t(1.0, "ms-ssim", None), t(1.0, "l1", None)]
        );
        assert_eq!(
            parse(" L2 + 0.1*lpips:alex ", N).unwrap(),
            vec![t(1.0, "l2", None), t(0.1, "lpips", Some("alex"))]
        );
        assert_eq!(
            parse("vgg:relu2_2,relu3_3+2e-1*ssim", N).unwrap(),
            vec![t(1.0, "vgg", Some("relu2_2,relu3_3")), t(0.2, "ssim", None)]
        );
        assert_eq!(
            parse("MDF:/W/Ds.safetensors", N).unwrap(),
            vec![t(1.0, "mdf", Some("/W/Ds.safetensors"))]
        );
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in ["", "l3", "l2+", "x*l2", "l2+vggg", "mdf:", "+l2"] {
            assert!(parse(bad, N).is_err(), "{bad:?} should fail");
        }
        let e = parse("l2+foo", N).unwrap_err().to_string();
        assert!(e.contains("unknown loss \"foo\""), "{e}");
    }
}
