"""Train a model (and its float twin) on SM events and write the artifact directory.

The SM file is split in file order into train / validation / test; the test part is
never trained on and calibrates the threshold. Every pass over the file streams it in
chunks (:mod:`models.stream`): the scaler's fit, each epoch (shuffled across chunks) and
the test scores, so the memory stays bounded whatever the file's size. The float twin is trained first and the
quantized model is then trained quantization-aware starting from its weights, so the two
stay the same function up to quantization. The schedule follows seed 003: Adam,
learning rate halved after ``lr_patience`` epochs without a better validation loss,
early stopping after ``early_stopping_patience``, and the best epoch is kept.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.artifact import Artifact, file_sha256, load_artifact, save_artifact
from models.config import Config, ModelConfig
from models.distill import Distillation, load_teacher, teacher_scores
from models.hgq import callbacks as hgq_callbacks
from models.hgq import copy_dense_weights, trace_ranges
from models.multiplicity import MultiplicityPrior
from models.networks import Networks, build_networks
from models.seeding import seed_training
from models.stream import CHUNK_EVENTS, EventBatches
from trigger.errors import UsageError
from trigger.events import open_events
from trigger.fixed import FixedType
from trigger.preprocess import Scaler
from trigger.rates import fpr_for_rate, parse_rate
from trigger.thresholds import ThresholdEstimate, threshold_for

__all__ = ("Split", "split_events", "train")


@dataclass(frozen=True)
class Split:
    """Event ranges [start, stop) of the SM file used for each purpose."""

    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]

    def as_dict(self) -> dict[str, list[int]]:
        return {"train": list(self.train), "validation": list(self.validation), "test": list(self.test)}


def split_events(n_events: int, validation_fraction: float, test_fraction: float) -> Split:
    n_test = round(n_events * test_fraction)
    n_val = round(n_events * validation_fraction)
    n_train = n_events - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        msg = f"{n_events} events are too few to split into train/validation/test"
        raise UsageError(msg)
    return Split((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n_events))


def _loss(name: str) -> Any:
    import tensorflow as tf

    if name == "mse":
        return "mse"
    if name == "nll":  # the flow's: -log p(x) per input, without the constant (the targets are not read)

        def nll(_y_true: Any, y_pred: Any) -> Any:
            z, log_det = y_pred[:, :-1], y_pred[:, -1]
            return (0.5 * tf.reduce_sum(tf.square(z), 1) - log_det) / float(z.shape[1])

        return nll

    def masked_mse(y_true: Any, y_pred: Any) -> Any:
        x, mask = y_true[:, : y_pred.shape[1]], y_true[:, y_pred.shape[1]:]
        return tf.reduce_sum(mask * tf.square(x - y_pred), 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)

    return masked_mse


def _epoch_logger(variant: str, epochs: int, out: Any) -> Any:
    import tensorflow as tf

    class EpochLogger(tf.keras.callbacks.Callback):  # type: ignore[misc]  # TensorFlow is untyped: the base is Any
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:  # noqa: ARG002  (Keras API)
            self.start = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            lr = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))
            print(f"  [{variant}] epoch {epoch + 1:>3}/{epochs}  loss {logs.get('loss', np.nan):.5f}  "
                  f"val_loss {logs.get('val_loss', np.nan):.5f}  lr {lr:.2g}  "
                  f"({time.monotonic() - self.start:.1f} s)", file=out, flush=True)

    return EpochLogger()


def _fit(config: Config, variant: str, data: dict[str, Any], out_dir: Path,
         log: Any, start_from: Networks | None = None) -> tuple[Networks, dict[str, list[float]]]:
    import tensorflow as tf

    tc, mc = config.training, config.model
    seed_training(tc.seed)
    nets = build_networks(mc, quantized=variant == "quantized")
    hgq = variant == "quantized" and mc.quantizer == "hgq"
    if start_from is not None and hgq:  # the same Dense layers, with HGQ's bit widths beside them
        copy_dense_weights(start_from.trainable, nets.trainable)
    elif start_from is not None:  # quantization-aware fine-tuning of the trained float twin
        nets.trainable.set_weights(start_from.trainable.get_weights())
    qat = start_from is not None
    rate = tc.qat_learning_rate if qat and tc.qat_learning_rate > 0 else tc.learning_rate
    epochs = tc.qat_epochs if qat and tc.qat_epochs >= 0 else tc.epochs
    nets.trainable.compile(optimizer=tf.keras.optimizers.Adam(rate), loss=_loss(mc.loss))
    if epochs == 0:  # post-training quantization: the twin's weights as they are
        if hgq:
            _trace(nets.trainable, mc, data, log)
        losses = [float(np.ravel(nets.trainable.evaluate(data[name], verbose=0))[0]) for name in ("train", "validation")]
        print(f"  [{variant}] the float twin's weights quantized, not retrained: loss {losses[0]:.5f}  "
              f"val_loss {losses[1]:.5f}", file=log, flush=True)
        return nets, {"loss": losses[:1], "val_loss": losses[1:]}
    checkpoint = out_dir / f"{variant}.weights.h5"
    callbacks = [
        tf.keras.callbacks.EarlyStopping(patience=tc.early_stopping_patience),
        tf.keras.callbacks.ReduceLROnPlateau(factor=tc.lr_factor, patience=tc.lr_patience, verbose=0),
        tf.keras.callbacks.ModelCheckpoint(str(checkpoint), save_best_only=True, save_weights_only=True),
        _epoch_logger(variant, epochs, log),
        *(hgq_callbacks() if hgq else []),
    ]
    fit = nets.trainable.fit(data["train"], validation_data=data["validation"], epochs=epochs,
                             callbacks=callbacks, verbose=0)
    nets.trainable.load_weights(checkpoint)  # the best epoch, whether or not training stopped early
    if hgq:
        _trace(nets.trainable, mc, data, log)
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    return nets, history


def _trace(model: Any, mc: ModelConfig, data: dict[str, Any], log: Any) -> None:
    """An HGQ model's integer bits: the ranges its chosen weights reach on the training events."""
    ebops = trace_ranges(model, data["train"], mc.hgq_cover, FixedType.parse(mc.input_type))
    print(f"  [quantized] HGQ ranges traced on the training events: {ebops:,.0f} EBOPs", file=log, flush=True)


def _distillation(config: Config, data_path: Path, split: Split,
                  log: Any) -> tuple[Distillation, dict[str, NDArray[np.float32]]]:
    """A student's teacher and its regression targets on the training and validation events."""
    teacher = load_teacher(config.training.teacher)
    print(f"  scoring the training and validation events with the teacher {teacher.config.model.name} "
          f"({teacher.default_variant})", file=log, flush=True)
    scores = {name: teacher_scores(teacher, data_path, getattr(split, name)) for name in ("train", "validation")}
    distillation = Distillation.from_scores(teacher, scores["train"])
    return distillation, {name: distillation.targets(s) for name, s in scores.items()}


def fit_prior(mc: ModelConfig, scaler: Scaler, data_path: Path, span: tuple[int, int]) -> MultiplicityPrior | None:
    """The model's multiplicity prior from the training events, on its firmware score's grid; None
    when the model has none (``ModelConfig.has_prior``)."""
    if not mc.has_prior:
        return None
    with open_events(data_path) as events:
        inputs = np.concatenate([scaler.transform(batch.particles)
                                 for batch in events.iter_batches(CHUNK_EVENTS, *span)])
    return MultiplicityPrior.fit(inputs, mc.multiplicity_weight, mc.score_step, mc.jet_multiplicity_weight,
                                 mc.score_ceiling if mc.accept_higher_counts else None)


Fitted = tuple[dict[str, Networks], dict[str, dict[str, list[float]]], dict[str, float]]


def _fit_variants(config: Config, variants: tuple[str, ...], data_path: Path, split: Split, scaler: Scaler,
                  targets: dict[str, NDArray[np.float32]], out_dir: Path, log: Any) -> Fitted:
    """Each variant trained on the streamed, prepared inputs: the float twin first, the quantized model from it."""
    tc, mc = config.training, config.model
    cache = tempfile.TemporaryDirectory(dir=out_dir, prefix=".inputs-")  # the prepared inputs, removed below
    streams = {"train": EventBatches(data_path, split.train, scaler, mc.loss, tc.batch_size, seed=tc.seed,
                                     cache=Path(cache.name) / "train", targets=targets.get("train")),
               "validation": EventBatches(data_path, split.validation, scaler, mc.loss, tc.batch_size,
                                          cache=Path(cache.name) / "validation", targets=targets.get("validation"))}
    for stream in streams.values():
        stream.prepare()
    data = {name: stream.dataset() for name, stream in streams.items()}
    networks: dict[str, Networks] = {}
    history: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    for variant in reversed(variants):  # the float twin first: the quantized model starts from it
        start = time.monotonic()
        networks[variant], history[variant] = _fit(config, variant, data, out_dir, log,
                                                   start_from=networks.get("float"))
        seconds[variant] = time.monotonic() - start
    del data, streams
    cache.cleanup()
    return networks, history, seconds


def _fit_vicreg(config: Config, data_path: Path, split: Split, scaler: Scaler, log: Any) -> Fitted:
    """A vicreg model (``models.vicreg``): the chain trained on the raw training events, held in memory
    (bound them with ``training.max_events``); the quantized network's weights are quantized as they are."""
    from models.vicreg import train_chain

    tc, mc = config.training, config.model
    if mc.quantized and tc.qat_epochs != 0:
        msg = "a vicreg model's quantized network is its float twin's weights quantized: set training.qat_epochs = 0"
        raise UsageError(msg)
    start = time.monotonic()
    with open_events(data_path) as events:
        particles = {name: np.asarray(events.read(*getattr(split, name)), np.float32)
                     for name in ("train", "validation")}
    weights, chain_history = train_chain(mc, scaler, particles, tc.epochs, tc.batch_size, tc.learning_rate,
                                         tc.early_stopping_patience, tc.seed, log)
    networks, history = {"float": build_networks(mc, quantized=False)}, {"float": chain_history}
    networks["float"].trainable.set_weights(weights["float"])
    seconds = {"float": time.monotonic() - start}
    if mc.quantized:
        networks["quantized"] = build_networks(mc, quantized=True)
        networks["quantized"].trainable.set_weights(weights["quantized"])
        residual = {name: float(np.mean(np.sum(np.square(networks["quantized"].scorer.predict(
            scaler.transform(raw), batch_size=4096, verbose=0)), axis=1))) for name, raw in particles.items()}
        history["quantized"] = {"loss": [residual["train"]], "val_loss": [residual["validation"]]}
        seconds["quantized"] = 0.0
        print(f"  [quantized] the weights quantized: mean score {residual['train']:.5f}  "
              f"validation {residual['validation']:.5f}", file=log, flush=True)
    return networks, history, seconds


def train(config: Config, data_path: str | Path, out_dir: str | Path, log: Any = sys.stdout) -> Artifact:
    """Train every variant of ``config`` on the SM events of ``data_path``; write ``out_dir``."""
    out_dir = Path(out_dir)
    tc, mc = config.training, config.model
    data_path = Path(data_path)
    with open_events(data_path) as events:
        n = events.n_events if tc.max_events <= 0 else min(tc.max_events, events.n_events)
        split = split_events(n, tc.validation_fraction, tc.test_fraction)
        source_attrs = events.attrs
        print(f"training {mc.name} ({mc.kind}, {mc.parameters_hint}) on {split.train[1]} SM events, "
              f"validating on {split.validation[1] - split.validation[0]}, "
              f"holding out {split.test[1] - split.test[0]}", file=log, flush=True)
        # Scaler.__post_init__ checks the method and parses an input_type given as text
        scaler = Scaler(mc.scaling, mc.log_pt, mc.input_type or None)  # type: ignore[arg-type]
        scaler.fit(batch.particles for batch in events.iter_batches(CHUNK_EVENTS, *split.train))
        prior = fit_prior(mc, scaler, data_path, split.train)
    distillation, targets = _distillation(config, data_path, split, log) if mc.kind == "student" else (None, {})
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = ("quantized", "float") if mc.quantized else ("float",)
    networks: dict[str, Networks]
    history: dict[str, dict[str, list[float]]]
    seconds: dict[str, float]
    if mc.kind == "vicreg":
        networks, history, seconds = _fit_vicreg(config, data_path, split, scaler, log)
    else:
        networks, history, seconds = _fit_variants(config, variants, data_path, split, scaler, targets, out_dir, log)
    networks = {variant: networks[variant] for variant in variants}  # the quantized model first
    artifact = Artifact(out_dir, config, scaler, networks, prior=prior)
    fpr = fpr_for_rate(parse_rate(tc.accept_rate), parse_rate(tc.bx_rate))
    thresholds: dict[str, ThresholdEstimate]
    metrics: dict[str, Any]
    thresholds, metrics = {}, {"test_events": split.test[1] - split.test[0], "target_fpr": fpr}
    if distillation is not None:
        metrics["distillation"] = distillation.describe()
    for variant in variants:
        with open_events(data_path) as events:
            scores = np.concatenate([artifact.score(batch.particles, variant)
                                     for batch in events.iter_batches(CHUNK_EVENTS, *split.test)])
        thresholds[variant] = threshold_for(  # `trigger calibrate` redoes the quantized one on the emulator
            scores, fpr, path=mc.quantizer if variant == "quantized" else variant,
            events=f"held-out test split [{split.test[0]}, {split.test[1]}) of {data_path.name}")
        metrics[variant] = {
            "parameters": int(networks[variant].trainable.count_params()),
            "epochs": len(history[variant]["loss"]),
            "best_val_loss": float(np.min(history[variant]["val_loss"])),
            "train_seconds": round(seconds[variant], 1),
            "test_score_quantiles": dict(zip(("50%", "90%", "99%"),
                                             np.quantile(scores, [0.5, 0.9, 0.99]).tolist(), strict=True)),
        }
    data_info = {
        "file": Path(data_path).name,
        "sha256": file_sha256(data_path),
        "events_used": n,
        "split": split.as_dict(),
        "source_process": source_attrs.get("process"),
        "source_seed": source_attrs.get("seed"),
    }
    save_artifact(out_dir, config, scaler, networks, thresholds, history, metrics, data_info, prior)
    for variant in variants:
        t = thresholds[variant]
        print(f"  [{variant}] threshold {t.threshold:.5g} for {tc.accept_rate} of {tc.bx_rate} "
              f"(FPR {fpr:.2g}): {t.note}", file=log)
    return load_artifact(out_dir)  # what the caller gets is what was written, checked
