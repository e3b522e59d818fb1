#!/usr/bin/env bash
# CI hook of the TypeScript client: install from the lock file, build, test against a
# real daemon (SEMANTICA_BIN, else ../../target/release or ../../target/debug).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --no-audit --no-fund
npm run build
npm test
# The README's example, in a fresh npm project installing this folder as a checkout has it.
bash ../readme_examples.sh typescript
