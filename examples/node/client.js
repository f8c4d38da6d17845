#!/usr/bin/env node
// A swapserve client in Node.js: loads protos/swapserve/v1/prediction.proto at run time and calls
// Predict, then Reload. Usage: node client.js [HOST:PORT] [MODEL]
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO = path.join(__dirname, "..", "..", "protos", "swapserve", "v1", "prediction.proto");
const target = process.argv[2] || "localhost:8500";
const model = process.argv[3] || "seed";

const definition = protoLoader.loadSync(PROTO, {
  keepCase: true, // field names exactly as in the .proto (model_name, tensor_content, ...)
  longs: String, // int64 versions do not fit a JS number safely
  enums: String,
  defaults: true,
});
const { PredictionService } = grpc.loadPackageDefinition(definition).swapserve.v1;
const client = new PredictionService(target, grpc.credentials.createInsecure());

// A float32 tensor: raw little-endian row-major bytes in tensor_content.
function floatTensor(values, shape) {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buffer.writeFloatLE(v, i * 4));
  return { dtype: "DT_FLOAT", shape: shape.map(String), tensor_content: buffer };
}

function decode(tensor) {
  const shape = tensor.shape.map(Number);
  if (tensor.dtype === "DT_STRING") {
    return { dtype: tensor.dtype, shape, values: tensor.string_val.map((b) => b.toString()) };
  }
  if (tensor.dtype !== "DT_FLOAT") {
    return { dtype: tensor.dtype, shape, bytes: tensor.tensor_content.length };
  }
  const values = [];
  for (let i = 0; i < tensor.tensor_content.length; i += 4) {
    values.push(tensor.tensor_content.readFloatLE(i));
  }
  return { dtype: tensor.dtype, shape, values };
}

function call(method, request) {
  const deadline = new Date(Date.now() + 30000);
  return new Promise((resolve, reject) => {
    client[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

async function main() {
  const prediction = await call("Predict", {
    model_name: model,
    inputs: { number: floatTensor([100.0], [1, 1]) },
  });
  const outputs = {};
  for (const [name, tensor] of Object.entries(prediction.outputs)) outputs[name] = decode(tensor);
  console.log(JSON.stringify({ call: "Predict", version: prediction.version, outputs }));

  const reload = await call("Reload", { model_name: model, version: "0" });
  console.log(JSON.stringify({ call: "Reload", ...reload }));
}

main()
  .catch((err) => {
    // gRPC errors carry the status code and the server's message.
    console.error(`${grpc.status[err.code] || "ERROR"}: ${err.details || err.message}`);
    process.exitCode = 1;
  })
  .finally(() => client.close());
