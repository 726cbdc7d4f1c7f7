#!/usr/bin/env bash
# Vendor the browser assets the service serves itself (Swagger UI, ReDoc, axe-core) from the npm
# registry: `npm ci` in web/ installs exactly the versions and integrity hashes of web/package-lock.json,
# then the few files the pages load are copied to service/api/static/vendor/ (not committed; rebuilt
# here). Nothing is ever loaded from a CDN. Sourced by scripts/bootstrap.sh; skips the work when the
# copied files match the lock file and this script already. Needs node/npm (Debian: apt-get install nodejs npm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
vendor=service/api/static/vendor
stamp="$vendor/.package-lock.sha256"
want="$(cat web/package-lock.json scripts/web-assets.sh | sha256sum | cut -d' ' -f1)"  # lock + this script
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  return 0 2>/dev/null || exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "web-assets: npm is missing (Debian: apt-get install -y nodejs npm); /docs and /redoc will answer 503" >&2
  return 0 2>/dev/null || exit 0
fi
(cd web && npm ci --ignore-scripts --omit=peer --no-audit --no-fund --loglevel=error >/dev/null)
rm -rf "$vendor"
mkdir -p "$vendor/swagger-ui" "$vendor/redoc" "$vendor/axe-core"
modules=web/node_modules
cp "$modules"/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui.css,favicon-32x32.png,LICENSE,NOTICE} "$vendor/swagger-ui/"
cp "$modules"/redoc/bundles/redoc.standalone.js "$vendor/redoc/"
cp "$modules"/redoc/LICENSE "$vendor/redoc/"
# ReDoc's sidebar footer loads its logo from cdn.redoc.ly with no option to turn it off: point it at
# our own icon (the only change to a vendored file; the browser tests fail on any off-origin load).
sed -i 's#https://cdn.redoc.ly/redoc/logo-mini.svg#/static/favicon.svg#' "$vendor/redoc/redoc.standalone.js"
if grep -q 'cdn.redoc.ly/redoc/logo-mini.svg' "$vendor/redoc/redoc.standalone.js"; then
  echo "web-assets: could not replace ReDoc's CDN logo" >&2; exit 1
fi
cp "$modules"/axe-core/{axe.min.js,LICENSE} "$vendor/axe-core/"
echo "$want" >"$stamp"
