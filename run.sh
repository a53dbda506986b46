#!/usr/bin/env bash
# Set everything up (.venv with llmrelay, the gateway and the local model) and run the main job:
# a streamed answer from the built-in local model, through llmrelay's completion() API.
# Extra arguments replace the question, e.g. `bash run.sh "What is a llama?"`.
set -euo pipefail
cd "$(dirname "$0")"
# The main job needs the gateway and the local model, not the test tools (test.sh adds them).
LLMRELAY_EXTRAS="${LLMRELAY_EXTRAS:-proxy,local}"
. scripts/setup-env.sh
exec "$VENV/bin/llmrelay" chat "${@:-Why is the sky blue?}"
