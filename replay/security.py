"""CurveZMQ encryption and authentication between the roles, ironhouse style.

Every role has its own key pair; a secret key never leaves the host that made it. A role's
key folder (``replay keys KEY_DIR ROLE``) holds::

    ROLE.key_secret          this role's pair (mode 0600; the folder 0700)
    ROLE.key                 its public half: the only file copied to other hosts
    servers/source.key       public keys of the roles it connects to
    servers/collector.key
    authorized_clients/*.key public keys of the roles allowed to connect to it

The source and the collector bind (and each also connects to the other); workers and the
reference only connect. A binding role's ZAP handler accepts a client only if its public key
is in ``authorized_clients/``. The single ``replay --transport tcp --curve`` command makes
fresh pairs for every role of the run in memory (:func:`run_keys`) and writes none.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from trigger.errors import UsageError

__all__ = ("ROLES", "SERVERS", "Curve", "create_keys", "key_instructions", "run_keys", "secure_client",
           "secure_server",
           "share_public_keys")

#: the roles that connect to each role that binds
CLIENTS = {"source": ("collector", "worker", "reference"), "collector": ("source", "worker", "reference")}
#: the roles each role connects to
SERVERS = {"source": ("collector",), "collector": ("source",), "worker": ("source", "collector"),
           "reference": ("source", "collector")}
ROLES = tuple(SERVERS)


def create_keys(directory: str | Path, role: str) -> Path:
    """Write ``role``'s key pair into ``directory`` (secret 0600, folder 0700) with empty
    ``servers/`` and ``authorized_clients/`` folders; returns the public key's path."""
    if role not in SERVERS:
        msg = f"no role {role!r}; one of {', '.join(ROLES)}"
        raise UsageError(msg)
    directory = Path(directory)
    if (directory / f"{role}.key_secret").exists():
        msg = f"{directory / role}.key_secret exists; not overwriting keys"
        raise UsageError(msg)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    (directory / "servers").mkdir(exist_ok=True)
    if role in CLIENTS:
        (directory / "authorized_clients").mkdir(exist_ok=True)
    public, secret = zmq.auth.create_certificates(directory, role)
    Path(secret).chmod(0o600)  # pyzmq writes it with the umask's mode, world-readable by default
    return Path(public)


def share_public_keys(folders: Mapping[str, Path]) -> None:
    """Copy the public keys between the key folders of ``folders`` (role -> folder made by
    :func:`create_keys`) as :func:`key_instructions` says: what an operator does by hand
    across hosts, for roles whose folders are all on this machine."""
    for role, folder in folders.items():
        for server in SERVERS[role]:
            if server in folders:
                shutil.copy(folders[server] / f"{server}.key", folder / "servers" / f"{server}.key")
        for client in CLIENTS.get(role, ()):
            if client in folders:
                shutil.copy(folders[client] / f"{client}.key", folder / "authorized_clients" / f"{client}.key")


def key_instructions(directory: Path, role: str) -> str:
    """What to copy where once ``role``'s pair is made in ``directory``."""
    host = socket.gethostname()
    lines = [f"{role}'s CurveZMQ key pair written to {directory} (the secret stays on this host).",
             f"Copy only its public key, {directory / role}.key:"]
    for server in SERVERS[role]:
        lines.append(f"  into authorized_clients/ of the {server}'s key folder, e.g. as {role}-{host}.key")
    if role in CLIENTS:
        lines.append(f"  into servers/ of the key folders of every {', '.join(CLIENTS[role])} host, as {role}.key")
    lines.append(f"Into {directory / 'servers'}/ copy the public keys of the "
                 + " and ".join(SERVERS[role]) + " (as " + " and ".join(f"{s}.key" for s in SERVERS[role]) + ")")
    if role in CLIENTS:
        lines.append(f"and into {directory / 'authorized_clients'}/ those of every "
                     f"{', '.join(CLIENTS[role])} that may connect.")
    lines.append(f"Then start the role with --curve {directory}.")
    return "\n".join(lines)


class _Allowed:
    """ZAP credentials provider: a client is let in when its public key is in the set."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self.keys = frozenset(keys)

    def callback(self, _domain: str, key: bytes) -> bool:
        return key in self.keys


@dataclass
class Curve:
    """One role's keys: its own pair, the public keys of the roles it connects to, and (for a
    binding role) the public keys of the clients it accepts; all z85-encoded."""

    role: str
    public: bytes
    secret: bytes
    servers: Mapping[str, bytes]
    authorized: frozenset[bytes] = frozenset()
    _authenticators: list[ThreadAuthenticator] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def load(cls, directory: str | Path, role: str) -> Curve:
        """The keys of ``role`` from its key folder, with a clear error for anything missing or unsafe."""
        directory = Path(directory)
        for folder in ("servers", "authorized_clients"):
            secrets = sorted((directory / folder).glob("*.key_secret"))
            if secrets:
                msg = (f"{secrets[0]} is a secret key; secret keys never leave their host: delete it "
                       f"and copy the public .key file instead")
                raise UsageError(msg)
        public, secret = _read_key(directory / f"{role}.key_secret", f"replay keys {directory} {role}")
        servers = {s: _read_key(directory / "servers" / f"{s}.key", f"copy the {s}'s public key there")[0]
                   for s in SERVERS[role]}
        authorized: frozenset[bytes] = frozenset()
        if role in CLIENTS:
            keys = sorted((directory / "authorized_clients").glob("*.key"))
            if not keys:
                msg = (f"no client keys in {directory / 'authorized_clients'}: copy there the public keys of the "
                       f"{', '.join(CLIENTS[role])} that may connect")
                raise UsageError(msg)
            authorized = frozenset(_read_key(k, "copy a public key made by `replay keys` there")[0] for k in keys)
        return cls(role, public, secret, servers, authorized)

    def server(self, sock: zmq.Socket[Any]) -> None:
        """Before ``bind``: encrypt, and accept only the authorized clients."""
        if self.role not in CLIENTS:
            msg = f"the {self.role} does not bind"
            raise ValueError(msg)
        if not any(a.context is sock.context for a in self._authenticators):  # one per context
            auth = ThreadAuthenticator(sock.context)
            auth.start()
            auth.configure_curve_callback(domain="*", credentials_provider=_Allowed(self.authorized))
            self._authenticators.append(auth)
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = self.secret, self.public, True

    def client(self, sock: zmq.Socket[Any], server: str) -> None:
        """Before ``connect`` to ``server`` (a role name): this role's pair and the server's public key."""
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (self.servers[server], self.public,
                                                                            self.secret)

    def close(self) -> None:
        for auth in self._authenticators:
            auth.stop()
        self._authenticators.clear()


def _read_key(path: Path, hint: str) -> tuple[bytes, bytes]:
    """A key file's (public, secret) halves; a secret file must be private to its owner."""
    if path.name.endswith("_secret") and path.is_file() and path.stat().st_mode & 0o077:
        msg = (f"{path} can be read by other users (mode {path.stat().st_mode & 0o777:o}); "
               f"a secret key must be private: chmod 600 {path}")
        raise UsageError(msg)
    if not path.is_file():
        msg = f"no CurveZMQ key {path}: {hint}"
        raise UsageError(msg)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        msg = f"cannot read CurveZMQ key {path} ({e}); {hint}"
        raise UsageError(msg) from None
    return public, secret or b""


def run_keys(workers: int) -> dict[str, Curve]:
    """Fresh pairs for the roles of one run on this machine (``source``, ``collector``,
    ``reference``, ``worker-0``…), each binding role accepting exactly the others."""
    names = ["source", "collector", "reference", *(f"worker-{k}" for k in range(workers))]
    pairs = {name: zmq.curve_keypair() for name in names}
    servers = {s: pairs[s][0] for s in CLIENTS}
    return {name: Curve(name.partition("-")[0], public, secret, servers,
                        frozenset(p for other, (p, _) in pairs.items() if other != name))
            for name, (public, secret) in pairs.items()}


def secure_server(curve: Curve | None, *socks: zmq.Socket[Any]) -> None:
    for sock in socks:
        if curve is not None:
            curve.server(sock)


def secure_client(curve: Curve | None, server: str, *socks: zmq.Socket[Any]) -> None:
    for sock in socks:
        if curve is not None:
            curve.client(sock, server)
