#!/usr/bin/env bash
# `make lock`: the generated projects' requirements.lock, one per set of requirements (the image
# classifier adds torchvision and torchmetrics), compiled by uv for every platform, with hashes, at
# the versions of constraints.txt: what this template's tests run. Needs the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
grep -v '^#' constraints.txt | grep -v '^$' >"$out/constraints.txt"
for task in image_classification regression; do
    .venv/bin/cookiecutter --no-input --accept-hooks no --output-dir "$out" . task="$task" \
        project_slug="$task" >/dev/null
    name=$([ "$task" = image_classification ] && echo vision || echo plain)
    .venv/bin/uv pip compile "$out/$task/requirements.txt" --universal --generate-hashes \
        --python-version 3.11 -c "$out/constraints.txt" --no-header --no-annotate --quiet \
        -o "templates/locks/$name.lock"
done
