# Sourced by test.sh and run.sh: create .venv (or $LLMRELAY_VENV) and install llmrelay with its extras.
# llama-cpp-python is built from source; GGML_NATIVE=OFF avoids llama.cpp's native (AMX) code
# path, which crashes on some CPUs (see docs/local-model.md).
VENV="${LLMRELAY_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$PY" -m pip install --quiet -e ".[${LLMRELAY_EXTRAS:-test,proxy,local,bedrock,observability,postgres}]"
