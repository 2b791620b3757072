"""``homeostat.lab.cluster`` without Go or binaries: the cache key, the warm no-op, the PKI.
(The control plane itself is tested, opt-in, in tests/cluster_real.)"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from homeostat.lab.cluster import build, certs


def test_the_pins_are_read_from_the_committed_go_modules() -> None:
    assert build.versions() == {"kubernetes": "v1.37.2", "etcd": "v3.7.0", "kwok": "v0.8.0"}
    go_mod = (build.KUBERNETES_MODULE / "go.mod").read_text()
    assert "replace k8s.io/api => k8s.io/api v0.37.2" in go_mod
    assert "=> ./staging" not in go_mod


def test_the_key_names_the_versions_and_changes_with_the_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = build.cache_key("go1.26.8")
    assert key.startswith("k8s-v1.37.2-etcd-v3.7.0-kwok-v0.8.0-")
    assert build.cache_key("go1.26.9") != key
    copy = tmp_path / "kwok"
    shutil.copytree(build.KWOK_MODULE, copy)
    monkeypatch.setattr(build, "KWOK_MODULE", copy)
    assert build.cache_key("go1.26.8") == key
    (copy / "go.sum").write_text((copy / "go.sum").read_text() + "example.com/x v1.0.0 h1:x=\n")
    assert build.cache_key("go1.26.8") != key


def test_a_warm_cache_is_a_no_op_without_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEOSTAT_CONTROL_PLANE_CACHE", str(tmp_path))
    assert build.built_bin_dir() is None
    folder = tmp_path / build.cache_key("go1.26.8")
    (folder / "bin").mkdir(parents=True)
    (folder / ".go-version").write_text("go1.26.8\n")
    for component in build.components():
        (folder / "bin" / component.name).write_bytes(b"")
    assert build.built_bin_dir() is None  # the kwok stages are part of a build
    build.stages_file(folder / "bin").write_text("")

    def no_go(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", no_go)
    assert build.built_bin_dir() == folder / "bin"
    out = io.StringIO()
    assert build.build(out=out) == folder / "bin"
    assert out.getvalue() == f"control plane binaries up to date: {folder / 'bin'}\n"


def test_the_pki(tmp_path: Path) -> None:
    pki = certs.generate(tmp_path)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    for cert in (admin, server):
        cert.verify_directly_issued_by(ca)
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", certs.SERVICE_IP}
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert pki.sa_key.stat().st_mode & 0o077 == 0
