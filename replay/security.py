"""Optional CurveZMQ encryption and authentication for tcp between hosts.

``replay keys DIR`` writes one server and one client key pair. Roles that bind (source,
collector) use the server pair and accept only clients whose public key is in DIR
(a ZAP authenticator thread); roles that connect use the client pair and the server's
public key. Copy DIR to every host; keep the ``*.key_secret`` files private.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from trigger.errors import UsageError

__all__ = ("Curve", "create_keys", "secure_client", "secure_server")


def create_keys(directory: str | Path) -> Path:
    """Write ``server`` and ``client`` key pairs into ``directory``."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("server", "client"):
        if (directory / f"{name}.key_secret").exists():
            msg = f"{directory / name}.key_secret exists; not overwriting keys"
            raise UsageError(msg)
        _, secret = zmq.auth.create_certificates(directory, name)
        Path(secret).chmod(0o600)  # pyzmq writes it with the umask's mode, world-readable by default
    return directory


@dataclass
class Curve:
    """Key material from a directory written by :func:`create_keys`."""

    directory: Path
    _authenticators: list[ThreadAuthenticator] = field(default_factory=list, repr=False)

    def _load(self, name: str, secret: bool) -> tuple[bytes, bytes | None]:
        path = self.directory / f"{name}.key{'_secret' if secret else ''}"
        if secret and path.is_file() and path.stat().st_mode & 0o077:
            msg = (f"{path} can be read by other users (mode {path.stat().st_mode & 0o777:o}); "
                   f"a secret key must be private: chmod 600 {path}")
            raise UsageError(msg)
        try:
            return zmq.auth.load_certificate(path)
        except (OSError, ValueError) as e:
            msg = f"cannot read CurveZMQ key {path} ({e}); create keys with `replay keys DIR`"
            raise UsageError(msg) from None

    def server(self, sock: zmq.Socket[Any]) -> None:
        """Before ``bind``: encrypt, and accept only clients whose key is in the directory."""
        if not self._authenticators:
            auth = ThreadAuthenticator(sock.context)
            auth.start()
            auth.configure_curve(domain="*", location=str(self.directory))
            self._authenticators.append(auth)
        public, secret = self._load("server", secret=True)
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True

    def client(self, sock: zmq.Socket[Any]) -> None:
        """Before ``connect``: the client pair and the server's public key."""
        server_public, _ = self._load("server", secret=False)
        public, secret = self._load("client", secret=True)
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_public, public, secret

    def close(self) -> None:
        for auth in self._authenticators:
            auth.stop()
        self._authenticators.clear()


def secure_server(curve: Curve | None, *socks: zmq.Socket[Any]) -> None:
    for sock in socks:
        if curve is not None:
            curve.server(sock)


def secure_client(curve: Curve | None, *socks: zmq.Socket[Any]) -> None:
    for sock in socks:
        if curve is not None:
            curve.client(sock)
