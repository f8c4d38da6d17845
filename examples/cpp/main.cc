// swapserve-cpp: calls swapserve's own API (swapserve.v1) from C++ with deadlines, status-code
// handling and retries on UNAVAILABLE, then prints what it saw as one JSON line.
//
//   swapserve-cpp --target 127.0.0.1:8500 --model seed
//
// Generated code comes from protos/swapserve/v1/prediction.proto: see docs/clients.md.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "swapserve/v1/prediction.grpc.pb.h"

namespace v1 = swapserve::v1;
using std::chrono::milliseconds;
using std::chrono::system_clock;

namespace {

// float32 values packed into tensor_content (little-endian, as x86 and ARM store them).
v1::Tensor FloatTensor(const std::vector<float>& values, std::vector<int64_t> shape) {
  v1::Tensor tensor;
  tensor.set_dtype(v1::DT_FLOAT);
  for (int64_t dim : shape) tensor.add_shape(dim);
  tensor.set_tensor_content(std::string(reinterpret_cast<const char*>(values.data()),
                                        values.size() * sizeof(float)));
  return tensor;
}

std::vector<float> Floats(const v1::Tensor& tensor) {
  std::vector<float> out(tensor.tensor_content().size() / sizeof(float));
  std::memcpy(out.data(), tensor.tensor_content().data(), out.size() * sizeof(float));
  return out;
}

// Every call gets a deadline: a server that stops answering costs a bounded wait.
std::unique_ptr<grpc::ClientContext> WithDeadline(std::chrono::microseconds timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(system_clock::now() + timeout);
  return context;
}

// Calls `call` (with a fresh context each time) until it is not UNAVAILABLE or attempts run
// out, backing off 50 ms, 100 ms, 200 ms, ...
template <typename Call>
grpc::Status WithRetry(int attempts, Call call) {
  milliseconds backoff(50);
  for (int i = 1;; ++i) {
    auto context = WithDeadline(milliseconds(10000));
    grpc::Status status = call(context.get());
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || i == attempts) return status;
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::INVALID_ARGUMENT: return "InvalidArgument";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DeadlineExceeded";
    case grpc::StatusCode::NOT_FOUND: return "NotFound";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FailedPrecondition";
    case grpc::StatusCode::UNAVAILABLE: return "Unavailable";
    case grpc::StatusCode::PERMISSION_DENIED: return "PermissionDenied";
    default: return "Other";
  }
}

std::string Json(const std::vector<float>& values) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  out << "]";
  return out.str();
}

int Fail(const std::string& what, const grpc::Status& status) {
  std::cerr << "swapserve-cpp: " << what << ": " << CodeName(status.error_code()) << ": "
            << status.error_message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:8500", model = "seed";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--target") == 0) target = argv[i + 1];
    if (std::strcmp(argv[i], "--model") == 0) model = argv[i + 1];
  }
  auto stub = v1::PredictionService::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));

  // Which version serves now.
  v1::GetModelStatusRequest status_request;
  status_request.set_model_name(model);
  v1::GetModelStatusResponse status_before;
  grpc::Status status = WithRetry(5, [&](grpc::ClientContext* context) {
    return stub->GetModelStatus(context, status_request, &status_before);
  });
  if (!status.ok()) return Fail("GetModelStatus", status);

  // Predict on a float tensor [3, 1].
  v1::PredictRequest request;
  request.set_model_name(model);
  (*request.mutable_inputs())["number"] = FloatTensor({1, 2, 3}, {3, 1});
  v1::PredictResponse response;
  status = WithRetry(5, [&](grpc::ClientContext* context) {
    return stub->Predict(context, request, &response);
  });
  if (!status.ok()) return Fail("Predict", status);
  std::vector<float> predicted = Floats(response.outputs().at("output"));

  // Predict on a string tensor: signature from_text takes the numbers as text.
  v1::PredictRequest text_request;
  text_request.set_model_name(model);
  text_request.set_signature_name("from_text");
  v1::Tensor& text = (*text_request.mutable_inputs())["text"];
  text.set_dtype(v1::DT_STRING);
  text.add_shape(2);
  text.add_string_val("1.5");
  text.add_string_val("2.5");
  v1::PredictResponse text_response;
  status = stub->Predict(WithDeadline(milliseconds(10000)).get(), text_request, &text_response);
  if (!status.ok()) return Fail("Predict from_text", status);
  std::vector<float> from_text = Floats(text_response.outputs().at("output"));

  // Errors are status codes: branch on the code, show the message.
  v1::PredictRequest unknown = request;
  unknown.set_model_name("no-such-model");
  v1::PredictResponse ignored;
  grpc::Status unknown_status = stub->Predict(WithDeadline(milliseconds(10000)).get(), unknown,
                                              &ignored);
  v1::PredictRequest bad = request;
  bad.mutable_inputs()->erase("number");
  (*bad.mutable_inputs())["nope"] = request.inputs().at("number");
  grpc::Status bad_status = stub->Predict(WithDeadline(milliseconds(10000)).get(), bad, &ignored);
  // A deadline shorter than the call: Reload takes at least its two settle scans (0.2 s), so
  // 50 ms ends it with DEADLINE_EXCEEDED. (A deadline of microseconds on a loopback Predict is
  // not a test: gRPC C++'s timers tick in milliseconds and the answer can come first.)
  v1::ReloadRequest reload_request;
  reload_request.set_model_name(model);
  v1::ReloadResponse reloaded;
  grpc::Status short_status =
      stub->Reload(WithDeadline(milliseconds(50)).get(), reload_request, &reloaded);

  // Reload after an export: answers once the newest version serves (or with the error).
  status = stub->Reload(WithDeadline(milliseconds(120000)).get(), reload_request, &reloaded);
  if (!status.ok()) return Fail("Reload", status);
  v1::GetModelStatusResponse status_after;
  status = stub->GetModelStatus(WithDeadline(milliseconds(10000)).get(), status_request,
                                &status_after);
  if (!status.ok()) return Fail("GetModelStatus", status);

  std::cout << "{\"language\": \"cpp\", \"serving_before\": " << status_before.serving_version()
            << ", \"predict\": " << Json(predicted) << ", \"from_text\": " << Json(from_text)
            << ", \"unknown_model\": \"" << CodeName(unknown_status.error_code())
            << "\", \"bad_input\": \"" << CodeName(bad_status.error_code())
            << "\", \"short_deadline\": \"" << CodeName(short_status.error_code())
            << "\", \"reload_version\": " << reloaded.version()
            << ", \"serving_after\": " << status_after.serving_version() << "}" << std::endl;
  return 0;
}
