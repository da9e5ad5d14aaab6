//! Makes `jndlab-train` (and the test/bench binaries) find libtorch without LD_LIBRARY_PATH, and keeps
//! CUDA: torch-sys passes `-ltorch_cuda` but rustc links with `--as-needed`, and since no symbol of
//! libtorch_cuda is referenced directly the linker drops it, so `tch::Cuda::is_available()` would be
//! false on a GPU machine. We re-add it between `--no-as-needed`/`--as-needed`.
//! Check: `readelf -d $CARGO_TARGET_DIR/debug/jndlab-train | grep -E 'NEEDED|RUNPATH'` lists
//! libtorch_cuda.so (when the torch wheel has it) and the torch/lib RUNPATH; `jndlab-train devices`
//! prints CUDA availability.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // torch-sys (`links = "tch"`) exports its libtorch lib dir to direct dependents.
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set; no rpath emitted");
        return;
    };
    let lib = PathBuf::from(lib);
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("apple") || target.contains("windows") {
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    for cuda in ["torch_cuda", "torch_cuda_cu", "torch_cuda_cpp"] {
        if lib.join(format!("lib{cuda}.so")).exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-l{cuda},--as-needed");
        }
    }
    println!("cargo:rustc-env=JNDLAB_LIBTORCH_LIB={}", lib.display());
}
