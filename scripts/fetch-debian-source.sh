#!/usr/bin/env bash
# Downloads a Debian source package (its .orig tarball, .dsc and Debian
# changes) into DIR, once: the instrumented builds of Debian's own libraries
# (scripts/build-instrumented-metaio.sh, scripts/tsan.sh) start from it.
# apt needs a deb-src entry for bookworm; one is added when run as root and
# none exists.
#   scripts/fetch-debian-source.sh PACKAGE VERSION DIR
set -euo pipefail
package=${1:?package} version=${2:?version} dir=${3:?folder}
mkdir -p "$dir"
if ls "$dir/${package}_"*.orig.tar.* >/dev/null 2>&1; then exit 0; fi
if ! apt-get source --print-uris "$package=$version" >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > /etc/apt/sources.list.d/fusionflow-deb-src.sources
    apt-get update -q >/dev/null
  else
    echo "fetch-debian-source: apt has no deb-src entry for bookworm; add one (as root) and run again" >&2
    exit 2
  fi
fi
(cd "$dir" && apt-get source --download-only -q "$package=$version" >/dev/null)
