"""make clients-test: builds the Go, C++ and Java examples from protos/ with the toolchains
Debian packages, starts a real swapserve on the demo model, runs each client against it and
checks what it printed; one line per language, non-zero exit on any failure.

    python tests/clients/run.py [--build-dir build/clients] [--languages go,cpp,java]

The demo model is trained afresh into a temporary export root (examples/seed/train.py, y = 2x,
with its ``from_text`` string signature). Before each client the harness exports a new version (a copy of the newest), so the client's
Reload must answer with that version. The toolchains are installed by ``make clients-setup``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from helpers import ServerProcess, wait_for  # noqa: E402 (the e2e tests' server process)
from swapserve_client import Client  # noqa: E402

log = logging.getLogger("clients")
JAVA_JARS = [
    "grpc-api",
    "grpc-core",
    "grpc-context",
    "grpc-stub",
    "grpc-protobuf",
    "grpc-protobuf-lite",
    "grpc-netty",
    "protobuf",
    "guava",
    "gson",
    "perfmark-api",
    "geronimo-annotation-1.3-spec",
    "jsr305",
    "error_prone_annotations",
    "netty-buffer",
    "netty-codec",
    "netty-codec-http",
    "netty-codec-http2",
    "netty-common",
    "netty-handler",
    "netty-resolver",
    "netty-transport",
]
"""Debian's jars (/usr/share/java) a grpc-java client needs at compile and run time."""
TFSERVING_GO = ("tensorflow_serving/apis/predict.proto", "tensorflow_serving/apis/model.proto")
"""TF Serving's files the Go client uses, generated as package swapserve.example/tfserving."""
GO_TOOL = "google.golang.org/protobuf/cmd/protoc-gen-go"


def run(*cmd: str | Path, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    """Runs a command; its stdout, or SystemExit with its output."""
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def build_go(out: Path) -> list[str]:
    """examples/go in a GOPATH of its own beside Debian's Go sources (/usr/share/gocode)."""
    gopath, src = out / "gopath", out / "gopath" / "src"
    src.mkdir(parents=True, exist_ok=True)
    env = {"GOPATH": f"{gopath}:/usr/share/gocode", "GO111MODULE": "off",
           "GOCACHE": str(out / "gocache"), "GOFLAGS": ""}  # fmt: skip
    run("go", "build", "-o", out / "bin" / "protoc-gen-go", GO_TOOL, env=env)
    path = {"PATH": f"{out / 'bin'}:{os.environ['PATH']}"}
    run("protoc", "-Iprotos", f"--go_out={src}", f"--go-grpc_out={src}",
        "protos/swapserve/v1/prediction.proto", env=path)  # fmt: skip
    closure = out / "tfserving.binpb"
    run(sys.executable, REPO / "tests" / "clients" / "descriptors.py", closure)
    names = [*TFSERVING_GO, *_tensorflow_imports(closure, TFSERVING_GO)]
    mapping = ",".join(f"M{name}=swapserve.example/tfserving" for name in TFSERVING_GO)
    run("protoc", f"--descriptor_set_in={closure}", f"--go_out={src}", f"--go_opt={mapping}",
        *names, env=path)  # fmt: skip
    main = src / "swapserve.example" / "swapserve-go"
    main.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / "go" / "main.go", main)
    run("go", "build", "-o", out / "swapserve-go", ".", cwd=main, env=env)
    return [str(out / "swapserve-go")]


def _tensorflow_imports(closure: Path, names: tuple[str, ...]) -> list[str]:
    """The TensorFlow files ``names`` import, directly or not (google/protobuf's come with
    Go's protobuf module)."""
    from google.protobuf import descriptor_pb2

    files = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(
        closure.read_bytes()).file}  # fmt: skip
    seen: list[str] = []
    todo = [d for n in names for d in files[n].dependency]
    while todo:
        name = todo.pop()
        if name in seen or name.startswith("google/protobuf/") or name in names:
            continue
        seen.append(name)
        todo += files[name].dependency
    return sorted(seen)


def build_cpp(out: Path) -> list[str]:
    """examples/cpp with Debian's gRPC C++ (libgrpc++-dev) and protoc plugin."""
    gen = out / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    run("protoc", "-Iprotos", f"--cpp_out={gen}", f"--grpc_out={gen}",
        "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin",
        "protos/swapserve/v1/prediction.proto")  # fmt: skip
    flags = run("pkg-config", "--cflags", "--libs", "grpc++", "protobuf").split()
    run("g++", "-std=c++17", "-O2", f"-I{gen}", REPO / "examples" / "cpp" / "main.cc",
        gen / "swapserve/v1/prediction.pb.cc", gen / "swapserve/v1/prediction.grpc.pb.cc",
        *flags, "-o", out / "swapserve-cpp")  # fmt: skip
    return [str(out / "swapserve-cpp")]


def build_java(out: Path) -> list[str]:
    """examples/java with Debian's grpc-java (libgrpc-java), protobuf-java and its plugin."""
    gen, classes = out / "gen", out / "classes"
    gen.mkdir(parents=True, exist_ok=True)
    classes.mkdir(parents=True, exist_ok=True)
    run("protoc", "-Iprotos", f"--java_out={gen}", f"--grpc-java_out={gen}",
        "--plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin",
        "protos/swapserve/v1/prediction.proto")  # fmt: skip
    classpath = ":".join(f"/usr/share/java/{jar}.jar" for jar in JAVA_JARS)
    sources = [*gen.rglob("*.java"), *(REPO / "examples" / "java").rglob("*.java")]
    run("javac", "-d", classes, "-cp", classpath, *sources)
    return ["java", "-cp", f"{classes}:{classpath}", "dev.swapserve.example.SwapserveClient"]


BUILDERS: dict[str, Callable[[Path], list[str]]] = {
    "go": build_go, "cpp": build_cpp, "java": build_java,
}  # fmt: skip


def new_version(root: Path) -> int:
    """Exports a new version: a copy of the newest, one number up (staged, then renamed)."""
    newest = max(int(p.name) for p in root.iterdir() if p.name.isdigit())
    staged = root / f"temp-{newest + 1}"
    shutil.copytree(root / str(newest), staged)
    staged.rename(root / str(newest + 1))
    return newest + 1


def check(language: str, report: dict[str, object], exported: int) -> list[str]:
    """What is wrong with a client's report (the demo model answers 2x)."""
    problems = []

    def close(name: str, want: list[float]) -> None:
        got = report.get(name)
        if (
            not isinstance(got, list)
            or len(got) != len(want)
            or any(abs(float(g) - w) > 0.05 for g, w in zip(got, want, strict=True))
        ):
            problems.append(f"{name}: {got}, expected about {want}")

    close("predict", [2.0, 4.0, 6.0])
    close("from_text", [3.0, 5.0])
    if language == "go":
        close("tfserving_predict", [2.0, 4.0, 6.0])
    for key, want in (("unknown_model", "NotFound"), ("bad_input", "InvalidArgument"),
                      ("short_deadline", "DeadlineExceeded"), ("reload_version", exported),
                      ("serving_after", exported)):  # fmt: skip
        if report.get(key) != want:
            problems.append(f"{key}: {report.get(key)!r}, expected {want!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "clients")
    parser.add_argument("--languages", default="go,cpp,java")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    languages = args.languages.split(",")
    commands = {}
    for language in languages:
        started = time.monotonic()
        commands[language] = BUILDERS[language](args.build_dir / language)
        log.info("built %s in %.0f s", language, time.monotonic() - started)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "seed"
        run(sys.executable, REPO / "examples" / "seed" / "train.py", "--export-root", root)
        server = ServerProcess("--model-name", "seed", "--export-root", str(root),
                               "--poll-seconds", "600")  # fmt: skip
        try:
            target = f"127.0.0.1:{server.port}"
            with Client(target, timeout=30) as client:
                wait_for(lambda: client.model_status("seed").serving_version, 120, "the demo")
            for language in languages:
                exported = new_version(root)
                done = subprocess.run(
                    [*commands[language], "--target", target, "--model", "seed"],
                    capture_output=True, text=True, timeout=300, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    problems = [f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"]
                else:
                    problems = check(language, json.loads(done.stdout), exported)
                failed += bool(problems)
                print(f"{language:5} {'FAIL' if problems else 'ok  '} "  # noqa: T201
                      f"{'; '.join(problems) or done.stdout.strip()}")  # fmt: skip
        finally:
            server.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
