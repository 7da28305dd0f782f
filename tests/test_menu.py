"""The emulated L1 menu (trigger.menu): seeds on hand-built events, pure efficiency, rates, the TOML
parser, and ``trigger evaluate --menu`` / ``trigger menu-rates`` on the small test files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from replay_helpers import FAST

from replay.config import ReplayConfig
from trigger.cli import main
from trigger.contracts import Evaluation
from trigger.errors import UsageError
from trigger.events import open_events
from trigger.menu import Menu, Seed, load_menu, pure_efficiency, rate_table
from trigger.schema import PT

RUN3 = {seed.name: seed for seed in load_menu("run3").seeds}


def event(met: float = 0.0, electrons: tuple[float, ...] = (), muons: tuple[float, ...] = (),
          jets: tuple[tuple[float, float], ...] = ()) -> np.ndarray:
    """One (19, 4) float32 event: pT of each object (jets as (pT, eta)), eta 0.5 elsewhere."""
    out = np.zeros((19, 4), np.float32)
    out[0] = (met, 0.0, 0.1, 1)
    for start, code, pts in ((1, 2, electrons), (5, 3, muons)):
        for i, pt in enumerate(pts):
            out[start + i] = (pt, 0.5, 0.0, code)
    for i, (pt, eta) in enumerate(jets):
        out[9 + i] = (pt, eta, 0.0, 4)
    return out


def fires(seed: Seed, *events: np.ndarray) -> list[bool]:
    return Menu("t", "test", (seed,)).fire(np.stack(events))[seed.name].tolist()


def test_thresholds_are_strictly_greater() -> None:
    mu = RUN3["SingleMu22"]
    assert fires(mu, event(muons=(22.0,)), event(muons=(22.01,)), event(muons=(21.9, 21.9))) == [False, True, False]
    dimu = RUN3["DoubleMu15_7"]
    assert fires(dimu, event(muons=(15.5, 7.5)), event(muons=(15.0, 7.5)), event(muons=(15.5, 7.0)),
                 event(muons=(40.0,))) == [True, False, False, False]
    met = RUN3["ETMHF90"]
    assert fires(met, event(met=90.0), event(met=90.5)) == [False, True]
    deg = RUN3["DoubleEG25_12"]
    assert fires(deg, event(electrons=(25.5, 12.5, 3.0)), event(electrons=(25.0, 20.0))) == [True, False]


def test_jet_seeds_apply_eta_and_the_ht_sum_by_hand() -> None:
    jet = RUN3["SingleJet180"]
    assert fires(jet, event(jets=((200.0, 2.5),)), event(jets=((200.0, 2.3),)), event(jets=((180.0, 0.0),))) == [
        False, True, False]
    ht = RUN3["HTT360"]  # jets > 30 GeV, |eta| < 2.4; HT > 360
    # 200 + 130 + 30.5 = 360.5 > 360: fires; the 30 GeV jet and the forward 100 GeV jet do not count
    counted = event(jets=((200.0, 0.1), (130.0, -1.0), (100.0, 3.0), (30.5, 2.0), (30.0, 0.0)))
    at_threshold = event(jets=((200.0, 0.1), (130.0, -1.0), (30.0, 0.0), (29.0, 0.0)))  # 330
    exactly = event(jets=((200.0, 0.1), (160.0, 0.0)))  # 360, not above
    assert fires(ht, counted, at_threshold, exactly) == [True, False, False]


def test_float64_decides_as_its_float32_twin() -> None:
    menu = load_menu("run3")
    # 22 + 1e-7 in float64 is above 22, but rounds to exactly 22.0 in float32: no fire, as the float32 file
    ev = np.stack([event(muons=(22.0,)), event(met=90.0)]).astype(np.float64)
    ev[0, 5, PT] = 22.0 + 1e-7
    ev[1, 0, PT] = 90.0 + 1e-6
    assert ev[0, 5, PT] > 22.0 and np.float32(ev[0, 5, PT]) == np.float32(22.0)
    bits64, bits32 = menu.fire(ev), menu.fire(ev.astype(np.float32))
    assert all(np.array_equal(bits64[k], bits32[k]) for k in bits32)
    assert not menu.any(ev).any()


def test_pure_efficiency_is_accepted_and_no_seed() -> None:
    rng = np.random.default_rng(3)
    accept, menu = rng.random(1000) < 0.3, rng.random(1000) < 0.5
    out = pure_efficiency(accept, menu)
    assert out["pure"]["count"] == int(np.sum(accept & ~menu))
    assert out["anomaly"]["count"] == int(accept.sum()) and out["menu"]["count"] == int(menu.sum())
    assert out["pure"]["low"] <= out["pure"]["fraction"] <= out["pure"]["high"]
    assert pure_efficiency(np.array([True, True, False]), np.array([True, False, False]))["pure"]["count"] == 1
    with pytest.raises(ValueError, match="menu bits"):
        pure_efficiency(accept, menu[:10])


def test_rate_interval_contains_the_fraction() -> None:
    bits = {"a": np.arange(1000) < 7, "none": np.zeros(1000, bool)}
    a, none = rate_table(bits, 40e6)
    assert a.fired == 7 and a.rate_hz == pytest.approx(7 / 1000 * 40e6)
    assert a.rate_low_hz < a.rate_hz < a.rate_high_hz
    assert none.rate_hz == 0.0 == none.rate_low_hz < none.rate_high_hz


def test_parser_refuses_an_unknown_seed_kind(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[seeds.X]\nkind = "single_tau"\npt = 30\n')
    with pytest.raises(UsageError) as info:
        load_menu(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "single_tau" in message
    path.write_text('[seeds.X]\nkind = "double_mu"\npt = 30\n')
    with pytest.raises(UsageError, match="needs pt = 2"):
        load_menu(path)


def test_bundled_menu_has_every_kind() -> None:
    assert {seed.kind for seed in load_menu("run3").seeds} == {
        "single_mu", "double_mu", "single_eg", "double_eg", "single_jet", "ht", "met"}


def test_menu_rates_command(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["menu-rates", str(files["sm"])]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "SingleMu22" in out and "not zero bias" in out


def test_evaluate_with_menu_prints_pure_efficiency(artifact_dir: Path, files: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(artifact_dir), "--background", str(files["sm"]),
                 "--signal", str(files["signal"]), "--menu", "run3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pure eff" in printed and "SM rates" in printed
    results = Evaluation.load(out)
    assert results.menu is not None and results.menu["name"] == "run3-like"
    for model in results.models.values():
        s = model["signals"]["hardjets"]
        m = s["menu"]
        assert m["anomaly"]["fraction"] == pytest.approx(s["working_point"]["tpr"])
        assert m["pure"]["count"] <= min(m["anomaly"]["count"], m["events"] - m["menu"]["count"])
        assert model["menu_background"]["pure"]["rate_hz"] <= model["menu_background"]["anomaly"]["rate_hz"]
    assert Evaluation.load(out).menu == results.menu


def test_replay_tags_each_accepted_event_with_the_seeds_evaluate_counts(tmp_path: Path, artifact_dir: Path,
                                                                          bundle: Path) -> None:
    """accepted.h5's seed bits are the menu's bits on the same events; the summary counts the pure accepts."""
    import h5py
    from conftest import synthetic_events, write_events
    from replay_helpers import whole_run

    from replay.bundle import load_emulated
    from replay.config import WorkingPoint
    events = synthetic_events(2000, seed=17)
    events[:400, 9, 0] = np.linspace(20.0, 400.0, 400, dtype=np.float32)  # the leading jet over a range: some seeds fire
    data = write_events(tmp_path / "sm.h5", events, "sm-cocktail")
    threshold = float(np.quantile(load_emulated(bundle).scores(events), 0.8))
    summary = whole_run(tmp_path, artifact_dir, data, "run", reference_backend="none",
                        working_point=WorkingPoint(threshold=threshold))
    menu = load_menu("run3")
    with h5py.File(tmp_path / "run" / "accepted.h5") as f:
        bx, tags = f["bx"][:], f["seeds"][:]
    with open_events(tmp_path / "run" / "accepted.h5") as accepted:
        assert accepted.attrs["seed_names"] == [seed.name for seed in menu.seeds]
    fired = menu.fire(events[bx])
    expected = sum(bits.astype(np.uint32) << np.uint32(i) for i, bits in enumerate(fired.values()))
    np.testing.assert_array_equal(tags, expected)
    assert 0 < np.count_nonzero(tags) < len(tags)
    assert summary.menu == "run3" and summary.accepted_by_no_seed == np.count_nonzero(~menu.any(events[bx]))
    untagged = whole_run(tmp_path, artifact_dir, data, "plain", reference_backend="none",
                         working_point=WorkingPoint(threshold=threshold),
                         config=replace(ReplayConfig(batch_size=512, **FAST), menu=None))
    assert untagged.accepted_by_no_seed is None and untagged.events_accepted == summary.events_accepted
    with h5py.File(tmp_path / "plain" / "accepted.h5") as f:
        assert "seeds" not in f


def test_tags_are_the_seed_bits_and_refuse_more_seeds_than_bits(tmp_path: Path) -> None:
    from conftest import synthetic_events

    events = synthetic_events(500, seed=3)
    menu = Menu("jets", "test", tuple(Seed(f"jet{i}", "single_jet", (10.0 * i,), 2.4) for i in range(5)))
    fired = menu.fire(events)
    tags = menu.tags(events)
    for i, bits in enumerate(fired.values()):
        np.testing.assert_array_equal((tags >> i) & 1, bits)
    assert 0 < np.count_nonzero(tags) < len(tags) and len(np.unique(tags)) > 2
    wide = Menu("wide", "test", tuple(Seed(f"s{i}", "met", (float(i),), np.inf) for i in range(33)))
    with pytest.raises(UsageError, match="at most 32"):
        wide.tags(events)
    path = tmp_path / "wide.toml"  # refused when the replay is set up, not when it writes its files
    path.write_text("".join(f'[seeds.{s.name}]\nkind = "{s.kind}"\npt = {s.pt[0]}\n' for s in wide.seeds))
    with pytest.raises(UsageError, match="at most 32"):
        ReplayConfig(menu=str(path))
