"""The webhook's serving certificate as the API server checks it, and cert-controller's CA injection.

cmd/webhook/main.go runs open-policy-agent/cert-controller's rotator (unless ``--disable-cert-rotation``) over the
Secret ``azure-wi-webhook-server-cert``: a self-signed RSA 2048 CA (CN ``azure-workload-identity-ca``, O
``azure-workload-identity``, ten years) signs a serving certificate for ``<service>.<namespace>.svc`` (one year),
both from an hour back (rotator.go CreateCACert/CreateCertPEM). Its ReconcileWH watches that Secret and the
MutatingWebhookConfiguration ``azure-wi-webhook-mutating-webhook-configuration`` and writes the Secret's ca.crt
into every webhook's ``clientConfig.caBundle`` (ensureCerts/injectCertToWebhook): a caBundle reset by hand comes
back as soon as a running manager sees the change. Every replica runs it (LeaderElection false).

The API server dials the webhook with ``caBundle`` as its only roots (webhook/client.go; an empty caBundle leaves
the system roots, which do not hold the rotator's CA) and verifies the name ``<service>.<namespace>.svc``. Its
errors are Go's crypto/x509 texts behind crypto/tls's ``tls: failed to verify certificate: `` (Go 1.20+), as
kubernetes-sigs/cluster-api-provider-azure#5690 shows: ``... failed to call webhook: Post "https://...svc:443/
...?timeout=10s": tls: failed to verify certificate: x509: certificate signed by unknown authority``. Go's
Certificate.Verify checks the leaf's validity period first, then its name, then builds a chain
(``x509: certificate has expired or is not yet valid: current time <now> is after <notAfter>``,
``x509: certificate is valid for <names>, not <host>``, UnknownAuthorityError with its ``possibly because of
"crypto/rsa: verification error" while trying to verify candidate authority certificate "<CN>"`` hint when a CA of
the issuer's name is in the bundle but did not sign it: a rotated CA).

The lab's manager pods run this rotator while they run (:func:`reconcile`), unless started with
``--disable-cert-rotation`` (people who bring their own certificates, cert-manager's, set it). The lab's installs
share one CA, so the add-on's and the chart's rotators
inject the same caBundle (on a cluster each has its own and, both installed, they overwrite each other's).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import warnings
from typing import TYPE_CHECKING, Any

from lab.kube import webhook

if TYPE_CHECKING:
    from lab.runtime import Lab

Obj = dict[str, Any]

DISABLE_ROTATION_FLAG = "--disable-cert-rotation"
_CA: list[Any] = []  # (key, cert) of the lab's CA, made once (serial 1: the rotator gives 0, which cryptography refuses)


def _ca() -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    if not _CA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "azure-workload-identity"),
                          x509.NameAttribute(NameOID.COMMON_NAME, webhook.CA_NAME)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(webhook.CA_NAME)]), critical=False)
                .sign(key, hashes.SHA256()))
        _CA.append((key, cert))
    return _CA[0]


def make_ca(common_name: str = webhook.CA_NAME) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) of a new CA as the rotator makes one (a Secret rotated by hand, in tests)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "azure-workload-identity"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


def issue(dns_name: str, ca_cert_pem: bytes | None = None, ca_key_pem: bytes | None = None,
          not_after: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """(tls.crt, tls.key) PEM for ``dns_name`` signed by the given CA (the lab's by default), as CreateCertPEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if ca_cert_pem is None or ca_key_pem is None:
        ca_key, ca_cert = _ca()
    else:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    end = not_after or now + datetime.timedelta(days=365)
    # the chart's name is 67 characters: Go writes it, cryptography wants leave to pass the X.520 limit of 64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name, _validate=False)])
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(1)
            .not_valid_before(min(now - datetime.timedelta(hours=1), end - datetime.timedelta(hours=2)))
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


def secret_data(namespace: str) -> dict[str, bytes]:
    """ca.crt, ca.key, tls.crt, tls.key (PEM) the rotator keeps for the webhook in ``namespace``."""
    from cryptography.hazmat.primitives import serialization

    ca_key, ca_cert = _ca()
    crt, key = issue(f"{webhook.SERVICE_NAME}.{namespace}.svc")
    return {"ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM),
            "ca.key": ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()),
            "tls.crt": crt, "tls.key": key}


# ---------------------------------------------------------------- the API server's check


def _go_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pem_certs(data: bytes) -> list[Any]:
    from cryptography import x509

    try:
        return list(x509.load_pem_x509_certificates(data))
    except ValueError:
        return []


def verify(ca_bundle: str, serving_pem: bytes, host: str, now: datetime.datetime | None = None) -> str | None:
    """The TLS handshake's verdict on the serving certificate: None, or the error the API server reports.
    ``ca_bundle`` is clientConfig.caBundle as stored (base64 of PEM); an unreadable serving certificate is
    crypto/tls's parse failure."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    prefix = "tls: failed to verify certificate: "
    certs = _pem_certs(serving_pem)
    if not certs:
        return "tls: failed to parse certificate from server: x509: malformed certificate"  # unverified: the text
    leaf = certs[0]
    now = now or datetime.datetime.now(datetime.UTC)
    if now > leaf.not_valid_after_utc:
        return (f"{prefix}x509: certificate has expired or is not yet valid: current time {_go_time(now)} is after "
                f"{_go_time(leaf.not_valid_after_utc)}")
    if now < leaf.not_valid_before_utc:
        return (f"{prefix}x509: certificate has expired or is not yet valid: current time {_go_time(now)} is before "
                f"{_go_time(leaf.not_valid_before_utc)}")
    names = _dns_names(leaf)
    if host not in names:
        return f"{prefix}x509: certificate is valid for {', '.join(names)}, not {host}"
    try:
        bundle = base64.b64decode(ca_bundle or "", validate=True)
    except (binascii.Error, ValueError):
        bundle = b""
    hint = ""
    for ca in _pem_certs(bundle):
        if ca.subject != leaf.issuer:
            continue
        public = ca.public_key()
        try:
            if isinstance(public, rsa.RSAPublicKey):
                public.verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(),
                              leaf.signature_hash_algorithm)
            else:  # unverified: the lab's CAs are RSA, as the rotator's; another key type is checked the same way
                leaf.verify_directly_issued_by(ca)
            return None
        except (InvalidSignature, ValueError, TypeError):
            cn = [a.value for a in ca.subject if a.oid.dotted_string == "2.5.4.3"]
            hint = (f' (possibly because of "crypto/rsa: verification error" while trying to verify candidate '
                    f'authority certificate "{cn[0] if cn else ca.subject.rfc4514_string()}")')
    return f"{prefix}x509: certificate signed by unknown authority{hint}"


def _dns_names(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                    .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return []


# ---------------------------------------------------------------- what the lab reads


def serving_cert(lab: Lab, pod: Obj | None, namespace: str) -> bytes | None:
    """tls.crt the serving pod's manager presents: its ``cert`` volume's Secret (the chart's and add-on's
    azure-wi-webhook-server-cert) in its namespace; None when the pod mounts no such Secret or it is gone."""
    secret_name = webhook.CERT_SECRET_NAME
    for volume in ((pod or {}).get("spec") or {}).get("volumes") or []:
        if volume.get("name") == "cert" and (volume.get("secret") or {}).get("secretName"):
            secret_name = volume["secret"]["secretName"]
    data = _secret(lab, namespace, secret_name)
    try:
        return base64.b64decode(data.get("tls.crt") or "") or None
    except (binascii.Error, ValueError):
        return None


def _secret(lab: Lab, namespace: str, name: str) -> dict[str, str]:
    secrets = lab.kube.store.type_for("", "secrets")
    found = lab.kube.store.find(secrets, namespace, name) if secrets else None
    return dict((found or {}).get("data") or {})


def rotation_enabled(pod: Obj | None) -> bool:
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        args = [*(container.get("command") or []), *(container.get("args") or [])]
        if any(arg in (DISABLE_ROTATION_FLAG, "-disable-cert-rotation") or
               arg.startswith((f"{DISABLE_ROTATION_FLAG}=true", "-disable-cert-rotation=true")) for arg in args):
            return False
    return True


_SEEN: dict[tuple[int, str, str], tuple[str, str]] = {}  # (lab, namespace, pod): the versions it last saw


def reconcile(lab: Lab, namespace: str, pod_name: str = "") -> None:
    """One pass of a running manager's rotator in ``namespace`` (its ReconcileWH on a watch event): a Secret whose
    CA is not valid gets a new CA and serving certificate, one whose serving certificate its CA did not sign, or
    that expires within the 90 days' lookahead, a new serving certificate (refreshCertIfNeeded); then the Secret's
    ca.crt goes into every webhook of azure-wi-webhook-mutating-webhook-configuration (ensureCerts). Nothing to
    do while neither object changed."""
    secrets = lab.kube.store.type_for("", "secrets")
    mwcs = lab.kube.store.type_for("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
    if secrets is None or mwcs is None:
        return
    stored = lab.kube.store.peek(secrets, namespace, webhook.CERT_SECRET_NAME)
    if stored is None:  # Reconcile returns on NotFound
        return
    versions = (str(stored["metadata"].get("resourceVersion")),
                str(((lab.kube.store.peek(mwcs, "", webhook.MWC_NAME) or {}).get("metadata") or {})
                    .get("resourceVersion")))
    if _SEEN.get((id(lab), namespace, pod_name)) == versions:
        return
    secret = lab.kube.store.find(secrets, namespace, webhook.CERT_SECRET_NAME) or {}
    found = lab.kube.store.find(mwcs, "", webhook.MWC_NAME)
    _SEEN[(id(lab), namespace, pod_name)] = versions
    data = dict(secret.get("data") or {})
    fresh = _refreshed(data, namespace)
    if fresh is not None:
        secret["data"] = {**data, **{k: base64.b64encode(v).decode() for k, v in fresh.items()}}
        lab.kube.store.replace(secrets, secret, check_version=False)
        data = secret["data"]
    ca_crt = data.get("ca.crt")
    if not ca_crt or found is None or found.get("metadata", {}).get("deletionTimestamp"):
        return
    if all((hook.get("clientConfig") or {}).get("caBundle") == ca_crt for hook in found.get("webhooks") or []):
        return
    for hook in found.get("webhooks") or []:
        hook.setdefault("clientConfig", {})["caBundle"] = ca_crt
    lab.kube.store.replace(mwcs, found, check_version=False)


def _refreshed(data: dict[str, str], namespace: str) -> dict[str, bytes] | None:
    """What refreshCertIfNeeded writes into the Secret, None when its certificates are valid."""
    def raw(key: str) -> bytes:
        try:
            return base64.b64decode(data.get(key) or "")
        except (binascii.Error, ValueError):
            return b""

    dns_name = f"{webhook.SERVICE_NAME}.{namespace}.svc"
    lookahead = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=90)
    cas = _pem_certs(raw("ca.crt"))
    if not cas or not raw("ca.key") or lookahead > cas[0].not_valid_after_utc:
        ca_crt, ca_key = make_ca()
        crt, key = issue(dns_name, ca_crt, ca_key)
        return {"ca.crt": ca_crt, "ca.key": ca_key, "tls.crt": crt, "tls.key": key}
    bundle = base64.b64encode(raw("ca.crt")).decode()
    if verify(bundle, raw("tls.crt"), dns_name, lookahead) is not None or not raw("tls.key"):
        crt, key = issue(dns_name, raw("ca.crt"), raw("ca.key"))
        return {"tls.crt": crt, "tls.key": key}
    return None
