"""Connect to ``localhost:PORT`` from inside a pod's network namespace and relay it over stdin/stdout.

Run by the port-forward handler (:mod:`lab.kube.portforward`) as
``nsenter --target=PID --net -- python -I -S podconnect.py PORT``, the way the kubelet's runtime dials the port
inside the pod sandbox's namespace. Standard library only. When neither IPv4 nor IPv6 connects, one line on
stderr says why (Go's dial error wording, which the runtime reports) and the exit status is 1.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading


def _dial_error(family: str, address: str, exc: OSError) -> str:
    reason = (exc.strerror or str(exc)).lower()
    return f"dial {family} {address}: connect: {reason}"


def connect(port: int) -> socket.socket:
    errors = []
    for family, af, host, shown in (("tcp4", socket.AF_INET, "127.0.0.1", f"127.0.0.1:{port}"),
                                    ("tcp6", socket.AF_INET6, "::1", f"[::1]:{port}")):
        sock = socket.socket(af, socket.SOCK_STREAM)
        try:
            sock.connect((host, port))
            return sock
        except OSError as exc:
            sock.close()
            errors.append(_dial_error(family, shown, exc))
    raise ConnectionError(f"IPv4: {errors[0]} IPv6 {errors[1]} ")


def _to_socket(sock: socket.socket) -> None:
    try:
        while chunk := os.read(0, 65536):
            sock.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


def main(argv: list[str]) -> int:
    port = int(argv[0])
    try:
        sock = connect(port)
    except ConnectionError as exc:
        sys.stderr.write(str(exc))
        return 1
    threading.Thread(target=_to_socket, args=(sock,), daemon=True).start()
    try:
        while chunk := sock.recv(65536):
            os.write(1, chunk)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
