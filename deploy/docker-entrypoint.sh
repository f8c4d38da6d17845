#!/bin/sh
# The image's entrypoint. TF Serving's image contract: with MODEL_NAME set, serve
# $MODEL_BASE_PATH/$MODEL_NAME (MODEL_BASE_PATH defaults to /models) on 8500 (gRPC) and 8501
# (REST), any arguments being more tensorflow_model_server flags (a later flag wins).
# Without MODEL_NAME the arguments go to swapserve; with none, the mounted config is served.
set -eu
if [ -n "${MODEL_NAME:-}" ]; then
    exec tensorflow_model_server --port=8500 --rest_api_port=8501 \
        --model_name="$MODEL_NAME" --model_base_path="${MODEL_BASE_PATH:-/models}/$MODEL_NAME" "$@"
fi
if [ "$#" -eq 0 ]; then
    set -- --config /etc/swapserve/swapserve.yaml --port 8500 --rest-port 8501 --metrics-port 9090
fi
exec swapserve "$@"
