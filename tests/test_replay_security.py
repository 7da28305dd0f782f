"""CurveZMQ: an encrypted run, the warning for an exposed plain-text bind, `replay keys`, key
folders checked, an unauthorized client refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_helpers import host_keys, whole_run

from trigger.errors import UsageError


@pytest.mark.slow
def test_curve_encrypted_tcp_run(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    # long enough (the file looped) that the reference, which the trigger path never waits for, is READY
    # before the last batch even on a loaded machine: 1,500 events once were over before it connected
    summary = whole_run(tmp_path, artifact_dir, files["sm"], "run", transport="tcp", curve=True, events=15000,
                        loop=True)
    assert summary.accounting_ok and summary.events_decided == 15000
    assert summary.reference_events > 0  # the reference's three sockets got through too
    assert not list((tmp_path / "run").rglob("*.key*"))  # the run's keys live in memory only


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("127.3.2.1", False), ("::1", False),
                                              ("localhost", False), ("0.0.0.0", True), ("10.1.2.3", True),
                                              ("hostA", True)])
def test_binding_beyond_loopback_without_curve_is_warned(host: str, warned: bool) -> None:
    from replay.cli import exposure_warning

    warning = exposure_warning(host)
    assert (warning is not None) == warned
    assert warning is None or (host in warning and "--curve" in warning and "replay keys" in warning)


def test_each_role_makes_its_own_private_pair_and_says_what_to_copy(tmp_path: Path, capsys) -> None:
    from replay.cli import main

    keys = tmp_path / "keys"
    assert main(["keys", str(keys), "worker"]) == 0
    said = capsys.readouterr().out
    assert keys.stat().st_mode & 0o777 == 0o700
    assert (keys / "worker.key_secret").stat().st_mode & 0o777 == 0o600
    assert "authorized_clients/ of the source" in said and "authorized_clients/ of the collector" in said
    assert "servers/" in said and "worker.key_secret" not in said  # only the public key is ever copied
    assert main(["keys", str(keys), "worker"]) == 2  # an existing pair is never overwritten
    assert "not overwriting" in capsys.readouterr().err


def test_secret_keys_stay_private_and_key_folders_are_checked(tmp_path: Path) -> None:
    from replay.security import Curve

    keys = host_keys(tmp_path, ("source", "collector", "worker"))
    curve = Curve.load(keys["worker"], "worker")
    assert set(curve.servers) == {"source", "collector"}
    assert len(Curve.load(keys["source"], "source").authorized) == 2
    (keys["worker"] / "worker.key_secret").chmod(0o644)
    with pytest.raises(UsageError, match=r"worker\.key_secret can be read by other users \(mode 644\); .*chmod 600"):
        Curve.load(keys["worker"], "worker")
    (keys["worker"] / "worker.key_secret").chmod(0o600)
    (keys["worker"] / "servers" / "collector.key").unlink()
    with pytest.raises(UsageError, match=r"no CurveZMQ key .*servers/collector\.key: copy the collector's public key there"):
        Curve.load(keys["worker"], "worker")
    (keys["source"] / "authorized_clients" / "spy.key_secret").write_bytes(
        (keys["worker"] / "worker.key_secret").read_bytes())
    with pytest.raises(UsageError, match="secret keys never leave their host"):
        Curve.load(keys["source"], "source")
    for key in (keys["collector"] / "authorized_clients").iterdir():
        key.unlink()
    with pytest.raises(UsageError, match="no client keys in"):
        Curve.load(keys["collector"], "collector")


def test_a_client_whose_key_is_not_authorized_is_refused(tmp_path: Path) -> None:
    import zmq

    from replay.security import Curve, create_keys

    keys = host_keys(tmp_path, ("source", "collector", "worker"))
    intruder = tmp_path / "intruder"  # a pair made by `replay keys`, but never authorized
    create_keys(intruder, "worker")
    for server in ("source", "collector"):
        (intruder / "servers" / f"{server}.key").write_bytes((keys[server] / f"{server}.key").read_bytes())
    server = Curve.load(keys["collector"], "collector")
    ctx = zmq.Context()
    try:
        with ctx.socket(zmq.PULL) as pull:
            server.server(pull)
            port = pull.bind_to_random_port("tcp://127.0.0.1")
            received = {}
            for name, folder in (("intruder", intruder), ("worker", keys["worker"])):
                with ctx.socket(zmq.PUSH) as push:
                    push.linger = 0
                    Curve.load(folder, "worker").client(push, "collector")
                    push.connect(f"tcp://127.0.0.1:{port}")
                    push.send(name.encode(), zmq.NOBLOCK) if push.poll(2000, zmq.POLLOUT) else None
                    received[name] = pull.recv() if pull.poll(2000) else None
            assert received == {"intruder": None, "worker": b"worker"}
    finally:
        server.close()
        ctx.term()
