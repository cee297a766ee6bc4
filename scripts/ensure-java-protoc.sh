#!/usr/bin/env bash
# tests/protos/test_protos.py compiles the Java code protoc generates from protos/: it needs
# protoc, javac and the protobuf-java runtime of the same version. Install Debian's when missing.
set -euo pipefail
JAR=/usr/share/java/protobuf.jar
if command -v protoc >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 && [ -f "$JAR" ]; then
  exit 0
fi
echo "protoc, javac or $JAR is missing; installing them from Debian's packages" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
PACKAGES="protobuf-compiler libprotobuf-java"
command -v javac >/dev/null 2>&1 || PACKAGES="$PACKAGES default-jdk-headless"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $PACKAGES >/dev/null
[ -f "$JAR" ] || { echo "protobuf-java could not be installed" >&2; exit 1; }
