"""A real single-node Elasticsearch for the tests and the benchmark (no mocks).

The node comes from Maven Central's integ-test-zip (tests/es/install_es.sh). It runs as the
unprivileged user `elastic-test` (Elasticsearch refuses root) with its own copy of the config
directory, data dir and logs in a temporary directory, so the installation stays pristine and
a killed node can be restarted on the same data dir and port (the outage test).

Security: the integ-test-zip ships x-pack-security, so the node runs with HTTPS (a throw-away
CA made here with `cryptography`) and a file-realm user; the tests can then exercise the
sink's CA, user/password and API-key options against the real thing.
"""
from __future__ import annotations

import atexit
import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ES_VERSION = os.environ.get("ES_VERSION", "8.19.3")
ES_USER = "elastic-test"
ADMIN_USER = "lwm2m-admin"


class NodeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install() -> str:
    """Runs the idempotent installer; returns ES_HOME."""
    proc = subprocess.run(["bash", os.path.join(HERE, "install_es.sh")], capture_output=True, text=True,
                          env={**os.environ, "ES_VERSION": ES_VERSION})
    if proc.returncode != 0:
        raise NodeError(f"install_es.sh failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


def _make_ca_and_cert(directory: str) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1/localhost; returns (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lwm2m-monitor test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(directory, n) for n in ("ca.crt", "node.crt", "node.key"))
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


@dataclass
class Node:
    """One Elasticsearch process; start() / kill() / start() again keeps data dir and port."""

    home: str
    workdir: str
    http_port: int
    password: str = field(repr=False)
    ca_path: str
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    @classmethod
    def create(cls, home: str | None = None, security: bool = True) -> "Node":
        home = home or install()
        workdir = tempfile.mkdtemp(prefix="lwm2m-es-")
        conf = os.path.join(workdir, "config")
        shutil.copytree(os.path.join(home, "config"), conf)
        os.makedirs(os.path.join(workdir, "data"))
        os.makedirs(os.path.join(workdir, "logs"))
        os.makedirs(os.path.join(workdir, "tmp"))
        ca, cert, key = _make_ca_and_cert(conf)
        password = os.urandom(12).hex()
        port = free_port()
        settings = {
            "cluster.name": "lwm2m-monitor-test",
            "node.name": "node-1",
            "network.host": "127.0.0.1",
            "http.port": port,
            "transport.port": free_port(),
            "discovery.type": "single-node",
            "path.data": os.path.join(workdir, "data"),
            "path.logs": os.path.join(workdir, "logs"),
            # A shared CI disk must not flip our indices read-only.
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.destructive_requires_name": False,
            "xpack.security.enabled": security,
            "xpack.security.http.ssl.enabled": security,
            "xpack.security.http.ssl.certificate": "node.crt",
            "xpack.security.http.ssl.key": "node.key",
            "xpack.security.http.ssl.certificate_authorities": ["ca.crt"],
            "xpack.security.authc.api_key.enabled": True,
            "xpack.license.self_generated.type": "basic",
        }
        with open(os.path.join(conf, "elasticsearch.yml"), "w") as f:
            for k, v in settings.items():
                f.write(f"{k}: {json.dumps(v)}\n")
        node = cls(home, workdir, port, password, ca)
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", f"{ES_USER}:", workdir], check=True)
            os.chmod(workdir, 0o755)
        if security:
            proc = node._as_es_user([os.path.join(home, "bin", "elasticsearch-users"), "useradd", ADMIN_USER,
                                     "-p", password, "-r", "superuser"], capture_output=True, text=True)
            if proc.returncode != 0:
                shutil.rmtree(workdir, ignore_errors=True)
                raise NodeError(f"elasticsearch-users failed: {proc.stdout}{proc.stderr}")
        return node

    def _env(self) -> dict:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_PATH_CONF": os.path.join(self.workdir, "config"),
            "ES_JAVA_OPTS": "-Xms512m -Xmx512m",
            "ES_TMPDIR": os.path.join(self.workdir, "tmp"),
            "ES_JAVA_HOME": os.environ.get("ES_JAVA_HOME", _java_home()),
            "HOME": self.workdir,
        }

    def _as_es_user(self, argv: list[str], **kw):
        if os.getuid() == 0:
            argv = ["runuser", "-u", ES_USER, "--"] + argv
        return subprocess.run(argv, env=self._env(), **kw)

    def start(self, timeout: float = 180.0) -> None:
        argv = [os.path.join(self.home, "bin", "elasticsearch")]
        if os.getuid() == 0:
            argv = ["runuser", "-u", ES_USER, "--"] + argv
        log = open(os.path.join(self.workdir, "stdout.log"), "ab")
        # Own process group: kill() must take the JVM, not only the runuser wrapper.
        self.proc = subprocess.Popen(argv, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        atexit.register(self.kill)         # an interrupted session must not leave a JVM behind
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise NodeError(f"elasticsearch exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                health = self.request("GET", "/_cluster/health?wait_for_status=yellow&timeout=5s")
                if health.get("status") in ("yellow", "green"):
                    return
                last = str(health)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = str(exc)
            time.sleep(1.0)
        raise NodeError(f"elasticsearch not ready after {timeout}s ({last}): {self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(os.path.join(self.workdir, "stdout.log"), "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)

    def request(self, method: str, path: str, body=None) -> dict:
        """Plain HTTP to the node for test assertions, independent of the sink's client."""
        import base64
        data = None
        headers = {"Authorization": "Basic " + base64.b64encode(f"{ADMIN_USER}:{self.password}".encode()).decode()}
        if body is not None:
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
                headers["Content-Type"] = "application/x-ndjson"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl_context()) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                return {"_status": exc.code, **json.loads(payload)}
            except ValueError:
                return {"_status": exc.code, "error": payload.decode(errors="replace")}

    def kill(self) -> None:
        """SIGKILL the whole process group (the outage test); data dir and port stay."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _java_home() -> str:
    java = shutil.which("java") or "/usr/bin/java"
    return os.path.dirname(os.path.dirname(os.path.realpath(java)))
