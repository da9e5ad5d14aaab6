# Source me (bash/zsh): `source scripts/torch-env.sh` after `bash scripts/setup-torch.sh`.
# Exports what tch/torch-sys need to build against the project's PyPI torch and what the test
# binaries need to find it at run time (the jndlab-train binary itself carries an rpath).
_jndlab_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_jndlab_venv="${JNDLAB_VENV:-$_jndlab_root/.venv}"
if [ ! -x "$_jndlab_venv/bin/python" ]; then
  echo "torch-env: $_jndlab_venv is missing; run: bash scripts/setup-torch.sh" >&2
else
  export LIBTORCH_USE_PYTORCH=1
  export VIRTUAL_ENV="$_jndlab_venv"
  case ":$PATH:" in *":$_jndlab_venv/bin:"*) ;; *) export PATH="$_jndlab_venv/bin:$PATH" ;; esac
  _jndlab_torch_lib="$("$_jndlab_venv/bin/python" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  case ":${LD_LIBRARY_PATH:-}:" in
    *":$_jndlab_torch_lib:"*) ;;
    *) export LD_LIBRARY_PATH="$_jndlab_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
  esac
  unset _jndlab_torch_lib
fi
unset _jndlab_root _jndlab_venv
