#!/usr/bin/env bash
# Installs everything tapegrad needs on Debian 12 with apt-get. Safe to run again.
#   --bench   also the benchmark peers: LibTorch (libtorch-dev) and perf
set -euo pipefail

packages=(
    g++ cmake make ccache pkg-config git
    xtensor-dev xtl-dev libxsimd-dev
    libopenblas-openmp-dev
    catch2 libbenchmark-dev
    zlib1g-dev nlohmann-json3-dev libcli11-dev
    dataset-fashion-mnist
)
if [[ "${1:-}" == "--bench" ]]; then
    packages+=(libtorch-dev linux-perf)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages already installed"
    exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
