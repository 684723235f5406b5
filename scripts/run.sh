#!/usr/bin/env bash
# Installs the dependencies, builds in Release, and runs the main job. Arguments go to the job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/configure.sh
exec ./build/tools/tapegrad-train "$@"
