# Sourced by test.sh and run.sh: create .venv (or $LLMRELAY_VENV) and install llmrelay with its extras.
#
# The local model's runtime, llama-cpp-python, is published as source only and compiled here: the
# one slow step (a few minutes on 2 cores, see README). It is built with only what llmrelay uses:
#   GGML_NATIVE=OFF  portable code (llama.cpp's native AMX path crashes on some CPUs, see
#                    docs/local-model.md);
#   LLAVA_BUILD=OFF  no multimodal (mtmd) library: llmrelay never loads it;
#   -O2 for C, -O1 for C++ instead of -O3: 37% less compile CPU; SmolLM2 decodes as fast
#                    (measured: 30.5 vs 31.5 ms CPU per token, within noise).
# Set CMAKE_ARGS yourself to build differently.
# Its compiler output goes to a log file instead of the screen; a line every 30 s shows progress.
VENV="${LLMRELAY_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
EXTRAS="${LLMRELAY_EXTRAS:-test,proxy,local,bedrock,observability,postgres,redis}"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS_RELEASE='-O2 -DNDEBUG' -DCMAKE_CXX_FLAGS_RELEASE='-O1 -DNDEBUG'}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
"$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip

_llmrelay_install() {
  "$PY" -m pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]"
}

case ",$EXTRAS," in
  *,local,*) _llmrelay_needs_build=1 ;;
  *) _llmrelay_needs_build=0 ;;
esac
if [ "$_llmrelay_needs_build" = 1 ] && "$PY" -c "import llama_cpp" >/dev/null 2>&1; then
  _llmrelay_needs_build=0
fi

if [ "$_llmrelay_needs_build" = 1 ]; then
  _llmrelay_log="$VENV/llama-cpp-build.log"
  _llmrelay_start=$SECONDS
  echo "llmrelay setup: installing, and compiling llama.cpp for the local model (once; about 4 minutes on 2 cores)." >&2
  echo "llmrelay setup: compiler output goes to $_llmrelay_log" >&2
  ( while sleep 30; do echo "llmrelay setup: still compiling llama.cpp ($((SECONDS - _llmrelay_start)) s)" >&2; done ) &
  _llmrelay_ticker=$!
  if _llmrelay_install >"$_llmrelay_log" 2>&1; then
    kill "$_llmrelay_ticker" 2>/dev/null || true
    wait "$_llmrelay_ticker" 2>/dev/null || true
    echo "llmrelay setup: done in $((SECONDS - _llmrelay_start)) s." >&2
  else
    kill "$_llmrelay_ticker" 2>/dev/null || true
    wait "$_llmrelay_ticker" 2>/dev/null || true
    tail -n 40 "$_llmrelay_log" >&2
    echo "llmrelay setup: the install failed (last lines above; the whole log: $_llmrelay_log)." >&2
    echo "llmrelay setup: compiling llama.cpp needs a C/C++ compiler and CMake (Debian: apt-get install build-essential cmake)." >&2
    exit 1
  fi
else
  _llmrelay_install
fi
# Frameworks built on LiteLLM (tests/frameworks run them on llmrelay via install_as_litellm):
# their dependencies first, then the frameworks themselves with --no-deps so that the real
# litellm package is never installed.
if [ "${LLMRELAY_FRAMEWORKS:-1}" = "1" ]; then
  "$PY" -m pip install --quiet --disable-pip-version-check -r scripts/frameworks-deps.txt
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps -r scripts/frameworks-requirements.txt
  if "$PY" -m pip show --quiet litellm >/dev/null 2>&1; then
    echo "setup-env: the real litellm package is installed in $VENV; tests/frameworks need it absent" >&2
  fi
fi
