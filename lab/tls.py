"""The lab's own certificate authority and the server certificate every lab endpoint presents."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme

SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


class LabTls:
    """A fresh CA per lab; clients trust it through ``ca.pem`` (REQUESTS_CA_BUNDLE / SSL_CERT_FILE)."""

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="wi-harness lab", organization_unit_name="lab CA")
        self._server_cert = self._ca.issue_cert(*SERVER_NAMES)
        self.ca_pem: bytes = self._ca.cert_pem.bytes()

    def write_ca(self, path: Path) -> None:
        path.write_bytes(self.ca_pem)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """What the lab itself uses for outbound HTTPS (Entra fetching an issuer's discovery document)."""
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cadata=self.ca_pem.decode())
        return ctx
