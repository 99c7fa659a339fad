#!/usr/bin/env bash
# Installs a local Elasticsearch node for the ES tests into <repo>/.es (gitignored), or into
# /var/lib/lwm2m-monitor-test/es when the checkout is out of the node user's reach (see below).
# Source: Maven Central, org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip
# (runs on the system Java 17). Idempotent: re-running with an installed node does nothing.
set -euo pipefail
ES_VERSION="${ES_VERSION:-8.19.3}"
ES_USER="${ES_USER:-elastic-test}"
REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ES_DIR="$REPO_ROOT/.es"
# Elasticsearch refuses to run as root: as root it runs as $ES_USER, who must be able to reach
# its home. A checkout below a private directory (mktemp -d is 0700) is out of that user's
# reach, so the node then lives in a system directory instead.
if [ "$(id -u)" = 0 ]; then
  id -u "$ES_USER" >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin "$ES_USER"
  if ! runuser -u "$ES_USER" -- test -x "$REPO_ROOT/tests/es"; then
    ES_DIR="/var/lib/lwm2m-monitor-test/es"
  fi
fi
HOME_DIR="$ES_DIR/elasticsearch-$ES_VERSION"

if [ -x "$HOME_DIR/bin/elasticsearch" ]; then
  echo "$HOME_DIR"
  exit 0
fi
mkdir -p "$ES_DIR"
ZIP="$ES_DIR/elasticsearch-$ES_VERSION.zip"
if [ ! -s "$ZIP" ]; then
  mvn -q dependency:copy \
    -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
    -DoutputDirectory="$ES_DIR" -Dmdep.stripVersion=false >&2
fi
rm -rf "$HOME_DIR.tmp"
mkdir -p "$HOME_DIR.tmp"
unzip -q "$ZIP" -d "$HOME_DIR.tmp"
# The zip holds a single top-level directory elasticsearch-<version>.
mv "$HOME_DIR.tmp"/elasticsearch-* "$HOME_DIR"
rm -rf "$HOME_DIR.tmp"

if [ "$(id -u)" = 0 ]; then
  chown -R "$ES_USER:" "$HOME_DIR"
fi
echo "$HOME_DIR"
