#!/usr/bin/env bash
# Start a throw-away Orthanc (Debian's package) for the PACS tests and benchmarks, on free
# local ports with a generated configuration. Usage:
#   scripts/start_orthanc.sh DIR RECEIVER_AET RECEIVER_PORT
# Writes DIR/orthanc.json, keeps its storage in DIR/storage, and prints one line:
#   <pid> <http port> <dicom port>
# The receiver (our Storage SCP) is registered as modality "cxr"; Orthanc's own AE title is
# ORTHANC. Installs the package with apt when it is missing.
set -euo pipefail
dir="$1"; receiver_aet="${2:-CXR_TRIAGE}"; receiver_port="${3:-11112}"
if ! command -v Orthanc >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq orthanc >/dev/null
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
http_port="${ORTHANC_HTTP_PORT:-$(free_port)}"
dicom_port="${ORTHANC_DICOM_PORT:-$(free_port)}"
mkdir -p "$dir/storage"
cat > "$dir/orthanc.json" <<JSON
{
  "Name": "CXR-TEST-PACS",
  "StorageDirectory": "$dir/storage",
  "IndexDirectory": "$dir/storage",
  "HttpPort": $http_port,
  "DicomPort": $dicom_port,
  "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomCheckCalledAet": false,
  "DicomAlwaysAllowStore": true,
  "DicomAlwaysAllowEcho": true,
  "DicomModalities": { "cxr": [ "$receiver_aet", "127.0.0.1", $receiver_port ] },
  "Plugins": [],
  "StableAge": 1,
  "HttpRequestTimeout": 60
}
JSON
Orthanc "$dir/orthanc.json" > "$dir/orthanc.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$http_port/system', timeout=1)" 2>/dev/null; then
    echo "$pid $http_port $dicom_port"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$dir/orthanc.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "Orthanc did not answer on port $http_port" >&2
kill "$pid" 2>/dev/null || true
exit 1
