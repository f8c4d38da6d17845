"""TLS and mutual TLS with certificates generated here (cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import ServerProcess, estimator_version, wait_for
from swapserve.app import App, create_app
from swapserve.config.model_settings import ModelSettings, SettingsError
from swapserve.config.settings import Settings
from swapserve_client import Client, SwapserveError
from swapserve_client import cli as client_cli

X = {"number": np.ones([1, 1], np.float32)}


def _cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test ca", ca_key, None, ca=True)
    files = {"ca": _pem(ca)}
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{name}.crt"] = _pem(_cert(name, key, (ca.subject, ca_key)))
        files[f"{name}.key"] = _key_pem(key)
    paths = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths[name] = d / name
    return paths


def _start(settings: Settings) -> Iterator[App]:
    server = create_app(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=2)


def _settings(root: Path, pki: dict[str, Path], mutual: bool) -> Settings:
    return Settings(
        models=(ModelSettings("m", root, poll_seconds=600),),
        host="127.0.0.1",
        port=0,
        tls_cert=pki["server.crt"],
        tls_key=pki["server.key"],
        tls_client_ca=pki["ca"] if mutual else None,
    )


def test_tls(tmp_path: Path, pki: dict[str, Path]) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    for server in _start(_settings(tmp_path, pki, mutual=False)):
        target = f"127.0.0.1:{server.port}"
        with Client(target, tls_ca=pki["ca"].read_bytes(), timeout=10) as client:
            wait_for(lambda: client.status("m")[0].state == "AVAILABLE")
            assert client.predict_full("m", X).version == 1
            assert client.reload("m").version == 1  # loopback admin still applies over TLS
        for ca in (pki["ca"], str(pki["ca"])):  # a file path works as well as the PEM bytes
            with Client(target, tls_ca=ca, timeout=10) as by_path:
                assert by_path.predict_full("m", X).version == 1
        with Client(target, timeout=3) as plain, pytest.raises(SwapserveError) as exc:
            plain.predict("m", X)
        assert exc.value.code == grpc.StatusCode.UNAVAILABLE
        assert client_cli.run([f"--target={target}", f"--tls-ca={pki['ca']}", "status", "m"]) == 0


def test_mutual_tls(tmp_path: Path, pki: dict[str, Path]) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    for server in _start(_settings(tmp_path, pki, mutual=True)):
        target = f"127.0.0.1:{server.port}"
        ca = pki["ca"].read_bytes()
        with (
            Client(target, tls_ca=ca, timeout=3) as anonymous,
            pytest.raises(SwapserveError) as exc,
        ):
            anonymous.predict("m", X)
        assert exc.value.code == grpc.StatusCode.UNAVAILABLE
        with Client(
            target, tls_ca=ca, tls_cert=pki["client.crt"].read_bytes(),
            tls_key=pki["client.key"].read_bytes(), timeout=10,
        ) as client:  # fmt: skip
            wait_for(lambda: client.status("m")[0].state == "AVAILABLE")
            assert client.predict_full("m", X).version == 1


def test_tls_settings_are_checked(tmp_path: Path, pki: dict[str, Path]) -> None:
    good = _settings(tmp_path, pki, mutual=True)
    with pytest.raises(SettingsError, match="needs both a certificate and a key"):
        replace(good, tls_key=None).validate()
    with pytest.raises(SettingsError, match="is not a readable file"):
        replace(good, tls_client_ca=tmp_path / "missing.pem").validate()


@pytest.mark.parametrize("mutual", [False, True])
def test_https_on_the_rest_port(tmp_path: Path, pki: dict[str, Path], mutual: bool) -> None:
    import json
    import ssl
    import urllib.error
    import urllib.request

    estimator_version(tmp_path, 1, weight=1.0)
    settings = replace(_settings(tmp_path, pki, mutual=mutual), rest_port=0)
    for server in _start(settings):
        url = f"https://127.0.0.1:{server.rest_port}/v1/models/m:predict"
        body = json.dumps({"inputs": [[1.0]]}).encode()
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        if mutual:
            with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
                urllib.request.urlopen(urllib.request.Request(url, body), context=context)
            context.load_cert_chain(pki["client.crt"], pki["client.key"])
        wait_for(lambda: server.registry.get("m").serving_version == 1)
        with urllib.request.urlopen(urllib.request.Request(url, body), context=context) as reply:
            assert json.loads(reply.read()) == {"outputs": [[2.0]]}
        plain = f"http://127.0.0.1:{server.rest_port}/healthz"
        with pytest.raises((urllib.error.URLError, ConnectionError)) as refused:
            urllib.request.urlopen(plain, timeout=5)
        if isinstance(refused.value, urllib.error.HTTPError):
            refused.value.close()


def test_tf_servings_ssl_config_file(tmp_path: Path, pki: dict[str, Path]) -> None:
    """tensorflow_model_server --ssl_config_file: TF Serving's SSLConfig (PEM texts inline),
    with client_verify: mutual TLS, as TF Serving serves it."""
    estimator_version(tmp_path / "m", 1, weight=1.0)
    texts = {k: pki[f].read_text() for k, f in
             (("server_key", "server.key"), ("server_cert", "server.crt"), ("custom_ca", "ca"))}  # fmt: skip
    config = tmp_path / "ssl.txt"
    config.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in texts.items()))
    config.write_text(config.read_text() + "client_verify: true\n")
    server = ServerProcess(
        "--model_name=m", f"--model_base_path={tmp_path / 'm'}", f"--ssl_config_file={config}",
        program="tensorflow_model_server",
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{server.port}"
        ca = pki["ca"].read_bytes()
        with Client(
            target, tls_ca=ca, tls_cert=pki["client.crt"].read_bytes(),
            tls_key=pki["client.key"].read_bytes(), timeout=10,
        ) as client:  # fmt: skip
            wait_for(lambda: client.status("m")[0].state == "AVAILABLE", timeout=60)
            assert client.predict_full("m", X).version == 1
        with Client(target, tls_ca=ca, timeout=3) as anonymous, pytest.raises(SwapserveError):
            anonymous.predict("m", X)  # no client certificate: refused
    finally:
        assert server.stop() == 0, server.log[-2000:]
    written = [ln for ln in server.log.splitlines() if "swapserve-tls-" in ln]
    assert written == [], written  # the PEM files' place is not logged
