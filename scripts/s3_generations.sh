#!/usr/bin/env bash
# Index generations on an S3 API: moto's S3 server (from PyPI, in a virtual
# environment of its own under target/) on loopback, a bucket, and the
# ignored test of tests/replicas.rs that publishes to s3:// and has a `serve`
# replica follow it. Exits non-zero if the test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${MOTO_VENV:-target/moto-venv}
PORT=${MOTO_PORT:-9183}
if ! "$VENV/bin/python" -c "import moto, boto3, flask" 2>/dev/null; then
    echo "== pip install moto[server] into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "moto[server]==5.1.4"
fi
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >target/moto.log 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    AWS_ENDPOINT="http://127.0.0.1:$PORT" AWS_ALLOW_HTTP=true
for _ in $(seq 50); do
    "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT')" 2>/dev/null && break
    sleep 0.2
done
"$VENV/bin/python" - <<PY
import boto3
boto3.client("s3", endpoint_url="$AWS_ENDPOINT", region_name="us-east-1").create_bucket(Bucket="twostage-test")
PY
export TWOSTAGE_S3_TEST_URL=s3://twostage-test/generations/music
cargo test --all-features --test replicas -- --ignored a_replica_follows_generations_on_s3
echo "s3_generations: ok"
