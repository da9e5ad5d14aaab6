//! `--device auto|cpu|cuda[:N]`.
use anyhow::{Result, bail};
use tch::{Cuda, Device};

/// Parses a device name; `auto` = the first CUDA device when available, else the CPU.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    let d = match s.as_str() {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" | "gpu" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:") {
            Some(n) => Device::Cuda(n.parse().map_err(|_| {
                anyhow::anyhow!("bad device {s:?}: expected auto, cpu, cuda or cuda:N")
            })?),
            None => bail!("bad device {s:?}: expected auto, cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(i) = d {
        let n = Cuda::device_count();
        if i as i64 >= n {
            bail!("device cuda:{i} requested but libtorch sees {n} CUDA device(s)");
        }
    }
    Ok(d)
}

/// One line describing what libtorch sees (for logs and `jndlab-train devices`).
pub fn describe() -> String {
    format!(
        "cuda available: {}, cuda devices: {}, cudnn: {}, threads: {}",
        Cuda::is_available(),
        Cuda::device_count(),
        Cuda::cudnn_is_available(),
        tch::get_num_threads()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        if !Cuda::is_available() {
            assert_eq!(parse_device("auto").unwrap(), Device::Cpu);
            assert!(
                parse_device("cuda:0")
                    .unwrap_err()
                    .to_string()
                    .contains("0 CUDA")
            );
        }
    }
}
