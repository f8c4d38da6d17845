package dev.swapserve.example;

import dev.swapserve.v1.DataType;
import dev.swapserve.v1.GetModelStatusRequest;
import dev.swapserve.v1.GetModelStatusResponse;
import dev.swapserve.v1.PredictRequest;
import dev.swapserve.v1.PredictResponse;
import dev.swapserve.v1.PredictionServiceGrpc;
import dev.swapserve.v1.ReloadRequest;
import dev.swapserve.v1.ReloadResponse;
import dev.swapserve.v1.Tensor;
import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Calls swapserve's own API (swapserve.v1) from Java with deadlines, status-code handling and
 * retries on UNAVAILABLE, then prints what it saw as one JSON line.
 *
 * <pre>java dev.swapserve.example.SwapserveClient --target 127.0.0.1:8500 --model seed</pre>
 */
public final class SwapserveClient {
  private SwapserveClient() {}

  /** float32 values packed little-endian into tensor_content. */
  static Tensor floatTensor(float[] values, long... shape) {
    ByteBuffer buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      buffer.putFloat(v);
    }
    buffer.flip();
    Tensor.Builder tensor = Tensor.newBuilder().setDtype(DataType.DT_FLOAT);
    for (long dim : shape) {
      tensor.addShape(dim);
    }
    return tensor.setTensorContent(ByteString.copyFrom(buffer)).build();
  }

  static List<Float> floats(Tensor tensor) {
    ByteBuffer buffer =
        tensor.getTensorContent().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    List<Float> out = new ArrayList<>();
    while (buffer.remaining() >= 4) {
      out.add(buffer.getFloat());
    }
    return out;
  }

  /** Calls until the answer is not UNAVAILABLE or attempts run out; backs off 50, 100, ... ms. */
  static <T> T withRetry(int attempts, Supplier<T> call) throws InterruptedException {
    long backoff = 50;
    for (int i = 1; ; i++) {
      try {
        return call.get();
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.UNAVAILABLE || i == attempts) {
          throw e;
        }
      }
      Thread.sleep(backoff);
      backoff *= 2;
    }
  }

  /** The status code of a call that is expected to fail ("OK" if it did not). */
  static String codeOf(Runnable call) {
    try {
      call.run();
      return "OK";
    } catch (StatusRuntimeException e) {
      return camel(e.getStatus().getCode());
    }
  }

  static String camel(Status.Code code) {
    StringBuilder out = new StringBuilder();
    for (String part : code.name().split("_")) {
      out.append(part.charAt(0)).append(part.substring(1).toLowerCase());
    }
    return out.toString();
  }

  public static void main(String[] args) throws Exception {
    String target = "127.0.0.1:8500";
    String model = "seed";
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].equals("--target")) {
        target = args[i + 1];
      } else if (args[i].equals("--model")) {
        model = args[i + 1];
      }
    }
    ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
    try {
      PredictionServiceGrpc.PredictionServiceBlockingStub stub =
          PredictionServiceGrpc.newBlockingStub(channel);
      // Every call gets a deadline: a server that stops answering costs a bounded wait.
      Supplier<PredictionServiceGrpc.PredictionServiceBlockingStub> call =
          () -> stub.withDeadlineAfter(10, TimeUnit.SECONDS);

      GetModelStatusRequest statusRequest =
          GetModelStatusRequest.newBuilder().setModelName(model).build();
      GetModelStatusResponse before = withRetry(5, () -> call.get().getModelStatus(statusRequest));

      PredictRequest request =
          PredictRequest.newBuilder()
              .setModelName(model)
              .putInputs("number", floatTensor(new float[] {1, 2, 3}, 3, 1))
              .build();
      PredictResponse response = withRetry(5, () -> call.get().predict(request));
      List<Float> predicted = floats(response.getOutputsOrThrow("output"));

      // A string tensor: signature from_text takes the numbers as text.
      Tensor text =
          Tensor.newBuilder()
              .setDtype(DataType.DT_STRING)
              .addShape(2)
              .addStringVal(ByteString.copyFromUtf8("1.5"))
              .addStringVal(ByteString.copyFromUtf8("2.5"))
              .build();
      PredictResponse fromText =
          call.get()
              .predict(
                  PredictRequest.newBuilder()
                      .setModelName(model)
                      .setSignatureName("from_text")
                      .putInputs("text", text)
                      .build());

      // Errors are status codes: branch on the code, show the message.
      String unknown =
          codeOf(() -> call.get().predict(request.toBuilder().setModelName("no-such").build()));
      PredictRequest bad =
          request.toBuilder()
              .removeInputs("number")
              .putInputs("nope", request.getInputsOrThrow("number"))
              .build();
      String badInput = codeOf(() -> call.get().predict(bad));
      String shortDeadline =
          codeOf(() -> stub.withDeadlineAfter(1, TimeUnit.MICROSECONDS).predict(request));

      // Reload after an export: answers once the newest version serves (or with the error).
      ReloadResponse reloaded =
          stub.withDeadlineAfter(120, TimeUnit.SECONDS)
              .reload(ReloadRequest.newBuilder().setModelName(model).build());
      GetModelStatusResponse after = call.get().getModelStatus(statusRequest);

      System.out.printf(
          "{\"language\": \"java\", \"serving_before\": %d, \"predict\": %s, \"from_text\": %s,"
              + " \"unknown_model\": \"%s\", \"bad_input\": \"%s\", \"short_deadline\": \"%s\","
              + " \"reload_version\": %d, \"serving_after\": %d}%n",
          before.getServingVersion(), predicted, floats(fromText.getOutputsOrThrow("output")),
          unknown, badInput, shortDeadline, reloaded.getVersion(), after.getServingVersion());
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
