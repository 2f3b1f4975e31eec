#!/usr/bin/env bash
# Make WordNet 3.0 available for NegLabel / ZOC-lite without network access to nltk's downloader:
# Debian's wordnet-base + wordnet-sense-index packages (oodbench reads them through nltk).
# Skipped when nltk's own wordnet data or the Debian files are already present.
set -euo pipefail
if [ -f /usr/share/wordnet/data.noun ] && [ -f /usr/share/wordnet/index.sense ]; then
    echo "[wordnet] Debian WordNet files present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    echo "[wordnet] installing Debian packages wordnet-base wordnet-sense-index"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null
else
    echo "[wordnet] cannot install the Debian packages here; NegLabel/ZOC-lite tests on WordNet will use" \
         "nltk's data if present (python -m nltk.downloader wordnet), else be skipped with the reason" >&2
fi
