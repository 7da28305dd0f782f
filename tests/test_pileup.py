"""Pileup: the minimum-bias library, its overlay on each event before the detector, and zero bias."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from trigger.cli import main as trigger_main
from trigger.errors import InputFileError, UsageError
from trigger.generator import GENERATED, GenerationPlan, final_state, generate, jets, library
from trigger.generator.chunks import stdout_silenced
from trigger.generator.detector import DetectorConfig, Particles, isolated
from trigger.generator.library import LibraryPlan, build_library
from trigger.generator.pileup import Overlay, PileupSpec
from trigger.generator.processes import PROCESSES, ZEROBIAS
from trigger.generator.pythia_source import PythiaSource
from trigger.validate import validate_file

LIBRARY_PLAN = LibraryPlan(60, seed=3, chunk_size=30)
SEEDS = np.random.SeedSequence(11, spawn_key=(1, 0, 1))


@pytest.fixture(scope="module")
def library_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pileup") / "minbias.h5"
    result = build_library(LIBRARY_PLAN, path, show_progress=False)
    assert result.complete and result.interactions == 60 and result.sha256
    return path


def _content(path: Path) -> dict[str, bytes]:
    with h5py.File(path) as h5:
        return {name: h5[name][:].tobytes() for name in h5}


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, module: object, name: str, index: int) -> Any:
    """Make ``module.name(chunk, progress)`` raise KeyboardInterrupt (a Ctrl-C) at chunk ``index``; returns the
    real function."""
    real = getattr(module, name)

    def interrupted(chunk: Any, progress: object = None) -> object:
        if chunk.index == index:
            raise KeyboardInterrupt
        return real(chunk, progress)

    monkeypatch.setattr(module, name, interrupted)
    return real


def _hard_events(name: str, n: int, seed: int = 5) -> list[Particles]:
    with stdout_silenced():
        source = PythiaSource(PROCESSES[name], seed, DetectorConfig())
    finals = source.final_states()
    return [next(finals) for _ in range(n)]


def test_the_library_holds_visible_particles_in_acceptance_and_its_hash(library_file: Path) -> None:
    with h5py.File(library_file) as h5:
        counts, pt, eta, pid = h5["n_particles"][:], h5["pt"][:], h5["eta"][:], h5["pid"][:]
        attrs = dict(h5.attrs)
        assert library.library_sha256(h5) == attrs["content_sha256"]
    assert counts.sum() == len(pt) == len(eta) and 50 < counts.mean() < 400
    assert np.all(pt > 0) and np.all(np.abs(eta.astype(float)) <= 4.9 + 4e-3)
    assert not np.isin(np.abs(pid), (12, 14, 16)).any()  # no neutrinos
    assert attrs["complete"] and json.loads(attrs["generation"]) == LIBRARY_PLAN.as_attrs()
    assert "SoftQCD:inelastic = on" in json.loads(attrs["pythia_settings"])


def test_the_library_is_the_same_for_any_jobs_and_after_an_interruption(
        library_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_library(LIBRARY_PLAN, tmp_path / "two.h5", jobs=2, show_progress=False)
    assert _content(tmp_path / "two.h5") == _content(library_file)
    real = _interrupt_at(monkeypatch, library, "run_library_chunk", 1)
    partial = build_library(LIBRARY_PLAN, tmp_path / "part.h5", show_progress=False)
    assert not partial.complete and partial.interactions == 30
    with pytest.raises(UsageError, match="is not complete"):
        PileupSpec.of_library(5.0, tmp_path / "part.h5")
    monkeypatch.setattr(library, "run_library_chunk", real)
    with pytest.raises(UsageError, match="other settings"):
        build_library(LibraryPlan(60, seed=4, chunk_size=30), tmp_path / "part.h5", resume=True, show_progress=False)
    resumed = build_library(LIBRARY_PLAN, tmp_path / "part.h5", resume=True, show_progress=False)
    assert resumed.complete and _content(tmp_path / "part.h5") == _content(library_file)


def test_the_number_of_interactions_overlaid_is_poisson(library_file: Path) -> None:
    mu = 4.5
    overlay = Overlay(PileupSpec.of_library(mu, library_file), SEEDS)
    n = np.array([len(overlay.draw(k).indices) for k in range(4000)])
    assert abs(n.mean() - mu) < 5 * np.sqrt(mu / len(n))
    assert abs(n.var() - mu) < 5 * mu * np.sqrt(2 / len(n))
    assert np.all(np.bincount(n)[:10] > 0)


def test_each_event_draws_its_own_pileup_whoever_asks_and_in_any_order(library_file: Path) -> None:
    spec = PileupSpec.of_library(7.0, library_file)
    a, b = Overlay(spec, SEEDS), Overlay(spec, SEEDS)
    later = [a.draw(k) for k in (3, 9, 4)]
    assert all(np.array_equal(x.indices, b.draw(k).indices) and np.array_equal(x.particles.phi, b.draw(k).particles.phi)
               for x, k in zip(later, (3, 9, 4), strict=True))
    assert not np.array_equal(a.draw(3).particles.pt, a.draw(4).particles.pt)
    other = Overlay(spec, np.random.SeedSequence(12, spawn_key=(1, 0, 1)))
    assert not np.array_equal(other.draw(3).particles.pt, a.draw(3).particles.pt)


def test_particles_are_conserved_before_the_detector(library_file: Path) -> None:
    """The detector and the jet finder see the event's visible particles plus every overlaid one."""
    with h5py.File(library_file) as h5:
        counts, pt, eta = h5["n_particles"][:].astype(int), h5["pt"][:].astype(np.float64), h5["eta"][:].astype(float)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    overlay = Overlay(PileupSpec.of_library(20.0, library_file), SEEDS)
    with stdout_silenced():
        source = PythiaSource(PROCESSES["w"], 5, DetectorConfig())
    finals = source.final_states()
    for k in range(3):
        final, pileup = next(finals), overlay.draw(k)
        merged = pileup.merged(final)
        chosen = pileup.indices
        assert len(merged.pt) == len(final.pt) + counts[chosen].sum() and len(chosen) > 5
        spans = [slice(s, s + c) for s, c in zip(starts[chosen], counts[chosen], strict=True)]
        assert merged.pt.sum() == pytest.approx(final.pt.sum() + sum(pt[span].sum() for span in spans), rel=1e-12)
        assert np.array_equal(np.abs(pileup.particles.eta), np.abs(np.concatenate([eta[span] for span in spans])))
        source._truth_jets(pileup)  # appends the pileup to the event record the jet finder reads
        record = final_state.python_final_visible(source._pythia.event)
        assert len(record.pt) == len(merged.pt)
        assert record.pt.sum() == pytest.approx(merged.pt.sum(), rel=1e-9)
        assert np.allclose(record.eta[len(final.pt):], merged.eta[len(final.pt):], atol=1e-9)


def test_the_compiled_append_writes_what_the_bindings_write(library_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pileup = Overlay(PileupSpec.of_library(3.0, library_file), SEEDS).draw(0)
    mass = np.full(len(pileup.particles.pt), 0.13957)
    records = []
    for native in (True, False):
        if not native:
            monkeypatch.setattr(final_state, "_appender", lambda: "switched off")
        with stdout_silenced():
            source = PythiaSource(PROCESSES["w"], 5, DetectorConfig())
        next(source.final_states())
        if native:
            final_state.append_final(source._pythia.event, pileup.particles, mass)
        else:
            with pytest.warns(RuntimeWarning, match="switched off"):
                final_state.append_final(source._pythia.event, pileup.particles, mass)
        event = source._pythia.event
        records.append([(p.id(), p.status(), p.px(), p.py(), p.pz(), p.e(), p.m()) for p in event])
    assert records[0] == records[1]


@pytest.mark.parametrize(("name", "mu"), [("ttbar", 0.0), ("w", 8.0), ("zerobias", 40.0)])
def test_the_compiled_jet_finder_finds_slowjets_jets(library_file: Path, name: str, mu: float) -> None:
    """The same anti-kt jets as Pythia's SlowJet (FastJet's core) on the same particles, to rounding."""
    overlay = Overlay(PileupSpec.of_library(mu, library_file), SEEDS)
    with stdout_silenced():
        source = PythiaSource(GENERATED[name], 5, DetectorConfig())
        finals, found = source.final_states(), 0
        for k in range(4):
            pileup = overlay.draw(k)
            merged = pileup.merged(next(finals))
            compiled = jets.antikt(merged, source.masses(merged.pid), DetectorConfig())
            reference = source._truth_jets(pileup)
            assert jets.same_jets(compiled, reference), (compiled, reference)
            assert np.all(np.diff(compiled.pt) <= 0) and np.all(compiled.pt >= DetectorConfig().jet_truth_pt_min)
            found += len(compiled.pt)
    assert found > 0


def test_a_jet_finder_that_disagrees_with_slowjet_steps_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    finder = jets.PileupJets(DetectorConfig())
    assert finder.compiled
    reference = Particles(np.zeros(1, np.int64), np.array([30.0]), np.array([0.5]), np.array([1.0]))
    wrong = reference._replace(pt=np.array([31.0]))
    monkeypatch.setattr(jets, "antikt", lambda *_: wrong)
    with pytest.warns(RuntimeWarning, match="other jets than SlowJet"):
        first = finder(reference, np.zeros(1), lambda: reference)
    assert first is reference and not finder.compiled
    assert finder(reference, np.zeros(1), lambda: reference) is reference


def test_lepton_isolation_degrades_as_pileup_grows(library_file: Path) -> None:
    """The fraction of W leptons (pT > 23 GeV) that pass the isolation cut falls with mu."""
    cfg = DetectorConfig()
    events = []
    for final in _hard_events("w", 60):
        leptons = np.flatnonzero(np.isin(np.abs(final.pid), (11, 13)) & (final.pt > 23) & (np.abs(final.eta) < 2.1))
        if len(leptons):
            events.append((final, leptons))
    assert len(events) >= 15
    passing = {}
    for mu in (0.0, 20.0, 60.0):
        overlay = Overlay(PileupSpec.of_library(mu, library_file), SEEDS)
        passing[mu] = np.concatenate([isolated(overlay.draw(k).merged(final), leptons, cfg)
                                      for k, (final, leptons) in enumerate(events)]).mean()
    assert passing[0.0] > 0.9 and passing[0.0] > passing[20.0] > passing[60.0]
    assert passing[60.0] < 0.5


ZB_PLAN = {"process": "zerobias", "events": 12, "seed": 4, "chunk_size": 4}


def _particles(path: Path) -> bytes:
    with h5py.File(path) as h5:
        return h5["Particles"][:].tobytes() + h5["process_code"][:].tobytes()


@pytest.fixture(scope="module")
def zero_bias(library_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zb") / "zb.h5"
    plan = GenerationPlan(**ZB_PLAN, pileup=PileupSpec.of_library(10.0, library_file))
    assert generate(plan, path, show_progress=False).complete
    return path


def test_zero_bias_files_validate_and_say_what_pileup_they_carry(zero_bias: Path, library_file: Path,
                                                                 tmp_path: Path) -> None:
    report = validate_file(zero_bias)
    assert report.ok, report.violations
    assert report.n_events == 12 and report.triggered < 12  # no lepton filter
    attrs = report.attrs
    with h5py.File(library_file) as h5:
        sha = h5.attrs["content_sha256"]
    assert attrs["pileup"]["mu"] == 10.0 and attrs["pileup"]["library_sha256"] == sha
    assert attrs["pileup"]["library_generation"] == LIBRARY_PLAN.as_attrs()
    assert attrs["generation"]["pileup"] == {"mu": 10.0, "library_sha256": sha, "library_interactions": 60}
    assert attrs["process_codes"] == {"zerobias": ZEROBIAS.code} and attrs["events_tried"] == {"zerobias": 12}
    assert "zero bias" in attrs["trigger"] and "pythia_mpi_init" in attrs
    with h5py.File(zero_bias) as h5:
        assert np.all(h5["process_code"][:] == ZEROBIAS.code)
        with_pileup = h5["Particles"][:]
    plain = generate(GenerationPlan(**ZB_PLAN), tmp_path / "plain.h5", show_progress=False)
    assert plain.complete and validate_file(tmp_path / "plain.h5").ok
    assert "pileup" not in validate_file(tmp_path / "plain.h5").attrs
    with h5py.File(tmp_path / "plain.h5") as h5:
        alone = h5["Particles"][:]
    assert with_pileup[:, 0, 0].mean() > 2 * alone[:, 0, 0].mean()  # more MET
    assert (with_pileup[:, 9:, 0] > 0).sum() > (alone[:, 9:, 0] > 0).sum()  # and more jets


def test_pileup_zero_is_the_sample_without_pileup(library_file: Path, tmp_path: Path) -> None:
    plan = {**ZB_PLAN, "events": 4}
    generate(GenerationPlan(**plan), tmp_path / "none.h5", show_progress=False)
    generate(GenerationPlan(**plan, pileup=PileupSpec.of_library(0.0, library_file)), tmp_path / "zero.h5",
             show_progress=False)
    assert _particles(tmp_path / "zero.h5") == _particles(tmp_path / "none.h5")


def test_pileup_samples_are_byte_identical_for_any_jobs_and_resumed(
        zero_bias: Path, library_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trigger.generator import run as generator_run

    plan = GenerationPlan(**ZB_PLAN, pileup=PileupSpec.of_library(10.0, library_file))
    assert generate(plan, tmp_path / "two.h5", jobs=2, show_progress=False).complete
    assert _particles(tmp_path / "two.h5") == _particles(zero_bias)
    real = _interrupt_at(monkeypatch, generator_run, "run_chunk", 2)
    assert not generate(plan, tmp_path / "part.h5", show_progress=False).complete
    monkeypatch.setattr(generator_run, "run_chunk", real)
    other = GenerationPlan(**ZB_PLAN, pileup=PileupSpec.of_library(11.0, library_file))
    with pytest.raises(UsageError, match="other settings"):
        generate(other, tmp_path / "part.h5", resume=True, show_progress=False)
    assert generate(plan, tmp_path / "part.h5", resume=True, show_progress=False).complete
    assert _particles(tmp_path / "part.h5") == _particles(zero_bias)


@pytest.mark.slow
def test_pileup_samples_are_byte_identical_on_a_dask_local_cluster(zero_bias: Path, library_file: Path,
                                                                    tmp_path: Path) -> None:
    plan = GenerationPlan(**ZB_PLAN, pileup=PileupSpec.of_library(10.0, library_file))
    assert generate(plan, tmp_path / "dask.h5", jobs=2, show_progress=False, scheduler="local").complete
    assert _particles(tmp_path / "dask.h5") == _particles(zero_bias)


def test_the_command_line_builds_a_library_and_overlays_it(library_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    lib = tmp_path / "lib.h5"
    assert trigger_main(["pileup-library", "--events", "10", "--seed", "2", "--chunk-size", "5", "--quiet",
                         "-o", str(lib)]) == 0
    assert "10 minimum-bias interactions" in capsys.readouterr().out
    assert trigger_main(["pileup-library", "--events", "10", "--seed", "2", "--chunk-size", "5", "--quiet",
                         "--resume", "-o", str(lib)]) == 0  # complete: read, not rewritten
    out = tmp_path / "zb.h5"
    base = ["generate", "--process", "zerobias", "--events", "3", "--chunk-size", "3", "--quiet", "-o", str(out)]
    assert trigger_main([*base, "--pileup", "2"]) == 2  # no library
    assert trigger_main([*base, "--pileup", "-1", "--pileup-library", str(lib)]) == 2
    assert trigger_main([*base, "--pileup", "2", "--pileup-library", str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err
    assert "--pileup MU and --pileup-library FILE go together" in err and ">= 0" in err and "missing.h5" in err
    assert not out.exists()
    assert trigger_main([*base, "--pileup", "2", "--pileup-library", str(lib)]) == 0
    assert validate_file(out).ok


def test_a_file_that_is_no_library_is_refused(tmp_path: Path, zero_bias: Path) -> None:
    with pytest.raises(UsageError, match="not a pileup library"):
        PileupSpec.of_library(5.0, zero_bias)
    (tmp_path / "text.h5").write_text("no")
    with pytest.raises(InputFileError, match="not an HDF5 file"):
        PileupSpec.of_library(5.0, tmp_path / "text.h5")


def test_rho_is_the_median_density_of_the_grid() -> None:
    """One particle of pT 2 at the centre of every cell gives rho = 2 / cell area; a hard jet in a few
    cells does not move the median."""
    from trigger.generator.detector import RHO_CELL, rho_grid_median

    cfg = DetectorConfig()
    d_eta, d_phi = RHO_CELL
    eta = np.arange(-cfg.visible_eta_max + d_eta / 2, cfg.visible_eta_max, d_eta)
    phi = np.arange(-np.pi + d_phi / 2, np.pi, d_phi)
    grid_eta, grid_phi = (a.ravel() for a in np.meshgrid(eta, phi, indexing="ij"))
    cell_area = (2 * cfg.visible_eta_max / len(eta)) * (2 * np.pi / len(phi))
    soft = Particles(np.full(len(grid_eta), 211), np.full(len(grid_eta), 2.0), grid_eta, grid_phi)
    assert rho_grid_median(soft, cfg) == pytest.approx(2.0 / cell_area)
    hard = Particles(*(np.concatenate([a, b]) for a, b in zip(soft, Particles(
        np.full(3, 211), np.full(3, 300.0), np.array([0.1, 0.2, 0.6]), np.array([0.1, 0.1, 0.3])), strict=True)))
    assert rho_grid_median(hard, cfg) == pytest.approx(2.0 / cell_area)
    nothing = Particles(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    assert rho_grid_median(nothing, cfg) == 0.0


def test_subtracting_rho_gives_back_the_isolation_pileup_took(library_file: Path) -> None:
    """At <mu> = 60 most W leptons fail the isolation cut; with the event's rho taken off the cone's sum
    most pass again."""
    from trigger.generator.detector import rho_grid_median

    cfg = DetectorConfig()
    overlay = Overlay(PileupSpec.of_library(60.0, library_file, subtraction=True), SEEDS)
    plain, subtracted = [], []
    for k, final in enumerate(_hard_events("w", 60)):
        leptons = np.flatnonzero(np.isin(np.abs(final.pid), (11, 13)) & (final.pt > 23) & (np.abs(final.eta) < 2.1))
        merged = overlay.draw(k).merged(final)
        plain.append(isolated(merged, leptons, cfg))
        subtracted.append(isolated(merged, leptons, cfg, rho_grid_median(merged, cfg)))
    before, after = np.concatenate(plain).mean(), np.concatenate(subtracted).mean()
    assert before < 0.5 < after


def test_subtraction_is_recorded_takes_jets_and_met_off_and_needs_pileup(library_file: Path, zero_bias: Path,
                                                                 tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="needs pileup to subtract"):
        PileupSpec.of_library(0.0, library_file, subtraction=True)
    assert trigger_main(["generate", "--process", "zerobias", "--events", "4", "--pileup-subtraction",
                         "-o", str(tmp_path / "x.h5")]) == 2
    assert "--pileup-subtraction needs them" in capsys.readouterr().err
    path = tmp_path / "subtracted.h5"
    plan = GenerationPlan(**ZB_PLAN, pileup=PileupSpec.of_library(10.0, library_file, subtraction=True))
    assert generate(plan, path, show_progress=False).complete
    attrs = validate_file(path).attrs
    assert attrs["generation"]["pileup"]["subtraction"] == "rho_area" and "rho" in attrs["pileup"]["method"]
    with h5py.File(path) as h5, h5py.File(zero_bias) as h5_plain:
        jets, jets_plain = h5["Particles"][:, 9:, 0], h5_plain["Particles"][:, 9:, 0]
        met, met_plain = h5["Particles"][:, 0, 0], h5_plain["Particles"][:, 0, 0]
    assert jets.sum() < jets_plain.sum() and (jets > 0).sum() <= (jets_plain > 0).sum()
    assert np.median(met) < np.median(met_plain)  # summed over cells less the pileup's density
