"""Model and training configuration: a TOML file plus ``key=value`` overrides, frozen and checked.

A configuration file has two tables, ``[model]`` and ``[training]``; see
``models/configs/*.toml``. Unknown keys are errors, not silent defaults.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from trigger.errors import UsageError
from trigger.fixed import FixedType, declared_score_type

__all__ = ("FLOAT_KINDS", "Config", "ModelConfig", "TrainingConfig", "load_config")

Kind = Literal["ae", "vae", "student", "vicreg", "ffn-baseline", "cnn-ae", "transformer-ae", "flow"]
Score = Literal["mse", "masked_mse", "ffn", "mu2", "kl", "nll", "distilled", "residual"]
KINDS: tuple[str, ...] = ("ae", "vae", "student", "vicreg", "ffn-baseline", "cnn-ae", "transformer-ae", "flow")
#: float-only references (seed 003, and the density model): no quantized variant, no firmware
FLOAT_KINDS = frozenset({"ffn-baseline", "cnn-ae", "transformer-ae", "flow"})
SCORES_BY_KIND = {"ae": ("mse", "masked_mse"), "vae": ("mu2", "kl"), "student": ("distilled",), "vicreg": ("residual",),
                  "ffn-baseline": ("ffn",),
                  "cnn-ae": ("mse", "masked_mse", "ffn"), "transformer-ae": ("mse", "masked_mse", "ffn"),
                  "flow": ("nll",)}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, quantization and preprocessing of one model (and its float twin)."""

    name: str = "dense-ae"
    kind: Kind = "ae"
    encoder: tuple[int, ...] = (32, 16)
    latent: int = 3
    decoder: tuple[int, ...] = (16, 32)
    quantized: bool = True  # False: a float model only (the seed baselines)
    # "qkeras": one width per layer (QKeras); "hgq": a width per weight and per activation, trained
    # with HGQ's resource penalty (models.hgq); weight_bits and activation_bits then set where the
    # trained widths start
    quantizer: Literal["qkeras", "hgq"] = "qkeras"
    hgq_beta: float = 0.0  # HGQ: the resource (EBOPs) penalty's weight in the loss
    hgq_cover: float = 1.0  # HGQ: activation ranges = the training events' range times this
    weight_bits: int = 8  # QKeras quantized_bits(bits, integer, alpha=1) for kernels and biases
    weight_integer: int = 1
    activation_bits: int = 8  # quantized_relu(bits, integer) -> ap_ufixed<bits, integer>
    activation_integer: int = 3
    float_activation: str = "relu"  # of the float twin ("leaky_relu" = LeakyReLU(0.3), seed 003)
    input_type: str = "ap_fixed<16,6>"  # the firmware's input grid; "" for none
    # the firmware's score: each error term (AE: output - input; VAE: mu) cast to error_type, the
    # sum of their squares in score_type ("": the exact width, so it never saturates)
    error_type: str = "ap_fixed<8,5,AP_RND,AP_SAT_SYM>"  # symmetric: |error| fits 7 bits
    score_type: str = ""
    scaling: str = "standard"
    log_pt: bool = True
    loss: Literal["mse", "masked_mse", "nll"] = "mse"
    score: Score = "mse"
    kl_weight: float = 1.0  # VAE: beta of the KL term
    kl_free_bits: float = 0.0  # VAE: each latent dimension's KL is penalised only above this (nats)
    # the first dense layer's initial kernel scale (Keras VarianceScaling, fan_avg, uniform; 1 is
    # Glorot's): with l2 = 0 the weights of inputs SM never fills (a 3rd or 4th lepton) keep their
    # initial values, which are all an encoder-only score (the VAE's mu) sees of those inputs
    input_init_scale: float = 1.0
    # transformer-ae: encoder = (embedding width, feed-forward width) of each attention block
    blocks: int = 2  # attention blocks before and after the bottleneck
    attention_heads: int = 4
    l2: float = 1e-4
    # flow: model.blocks affine couplings, each conditioned by a dense net of widths model.encoder;
    # Gaussian noise of this width (scaled units) on the inputs while training, so that the exact
    # zeros of empty slots do not make the density a spike
    flow_noise: float = 0.05
    # the multiplicity prior added to the score (models/multiplicity.py): this many times the SM
    # surprise of the event's lepton and jet counts, in nats; 0: none. jet_multiplicity_weight: the
    # jet count's own weight (unset: the same); accept_higher_counts: a count above every training
    # event's accepts the event (its prior tops every score the firmware can reach)
    multiplicity_weight: float = 0.0
    jet_multiplicity_weight: float | None = None
    accept_higher_counts: bool = False
    # vicreg (models/vicreg.py, AXOL1TL v5): model.encoder is the feature extractor (its last width: the
    # features), model.decoder and model.latent the latent autoencoder's hidden widths and bottleneck;
    # the extractor trains for vicreg_epochs with a projector of this width, on two views of each event
    # (each object but the MET dropped with probability vicreg_mask, pT smeared by vicreg_blur, turned in phi)
    vicreg_epochs: int = 30
    vicreg_projector: int = 32
    vicreg_mask: float = 0.1
    vicreg_blur: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            msg = f"model.kind {self.kind!r}: choose one of {', '.join(KINDS)}"
            raise UsageError(msg)
        if self.score not in SCORES_BY_KIND[self.kind]:
            msg = (
                f"model.score {self.score!r} does not fit kind {self.kind!r}; "
                f"choose one of {', '.join(SCORES_BY_KIND[self.kind])}"
            )
            raise UsageError(msg)
        if self.latent < 1 or any(w < 1 for w in (*self.encoder, *self.decoder)):
            msg = "layer widths and model.latent must be >= 1"
            raise UsageError(msg)
        if self.kind in FLOAT_KINDS and self.quantized:
            msg = f"the {self.kind} is a float model: set model.quantized = false"
            raise UsageError(msg)
        if self.kind == "transformer-ae" and (len(self.encoder) != 2 or self.blocks < 1 or self.attention_heads < 1):
            msg = ("a transformer-ae takes model.encoder = [embedding width, feed-forward width], "
                   "model.blocks >= 1 and model.attention_heads >= 1")
            raise UsageError(msg)
        if self.kind == "flow" and (self.loss != "nll" or self.blocks < 1 or not self.flow_noise >= 0):
            msg = "a flow takes model.loss = \"nll\", model.blocks >= 1 couplings and model.flow_noise >= 0"
            raise UsageError(msg)
        if self.kind == "student" and (self.latent != 1 or self.decoder or self.loss != "mse"):
            msg = ("a student regresses one number, its teacher's score: model.latent = 1, model.decoder = [] "
                   "and model.loss = \"mse\"")
            raise UsageError(msg)
        if self.loss == "nll" and self.kind != "flow":
            msg = "model.loss \"nll\" is the flow's (a density's negative log-likelihood)"
            raise UsageError(msg)
        if not 2 <= self.weight_bits <= 16 or not 2 <= self.activation_bits <= 16:
            msg = "bit widths must be between 2 and 16"
            raise UsageError(msg)
        if self.float_activation not in ("relu", "leaky_relu") or not self.input_init_scale > 0:
            msg = (f"model.float_activation must be relu or leaky_relu (got {self.float_activation!r}) and "
                   f"model.input_init_scale above 0 (got {self.input_init_scale})")
            raise UsageError(msg)
        self._check_multiplicity()
        self._check_quantizer()
        self._check_vicreg()
        for text in (self.input_type, self.error_type, self.score_type):
            if text:
                FixedType.parse(text)

    def _check_multiplicity(self) -> None:
        for name in ("multiplicity_weight", "jet_multiplicity_weight"):
            weight = getattr(self, name)
            if weight is not None and not weight >= 0:
                msg = f"model.{name} must be >= 0 (got {weight})"
                raise UsageError(msg)
        if self.has_prior and self.kind in FLOAT_KINDS:
            msg = (f"the multiplicity prior (model.multiplicity_weight, jet_multiplicity_weight, accept_higher_counts) "
                   f"is for the models that go to firmware, not a {self.kind}")
            raise UsageError(msg)

    @property
    def has_prior(self) -> bool:
        """Whether the score adds a multiplicity prior (``models.multiplicity``)."""
        return bool(self.multiplicity_weight or self.jet_multiplicity_weight or self.accept_higher_counts)

    def _check_vicreg(self) -> None:
        if self.kind == "vicreg" and (not self.encoder or self.vicreg_epochs < 1 or self.vicreg_projector < 1
                                      or not 0 <= self.vicreg_mask < 1 or not self.vicreg_blur >= 0):
            msg = ("a vicreg model takes model.encoder = [..., features], model.vicreg_epochs >= 1, "
                   "model.vicreg_projector >= 1, 0 <= model.vicreg_mask < 1 and model.vicreg_blur >= 0")
            raise UsageError(msg)

    def _check_quantizer(self) -> None:
        if self.quantizer not in ("qkeras", "hgq"):
            msg = f"model.quantizer {self.quantizer!r}: choose qkeras or hgq"
            raise UsageError(msg)
        if self.quantizer == "hgq" and (self.kind not in ("ae", "student") or not self.input_type):
            msg = (f"model.quantizer = \"hgq\" is for the dense autoencoder and student with a model.input_type, "
                   f"not a {self.kind}{'' if self.input_type else ' without an input grid'}")
            raise UsageError(msg)
        if not self.hgq_beta >= 0 or not self.hgq_cover >= 1:
            msg = f"model.hgq_beta must be >= 0 and model.hgq_cover >= 1 (got {self.hgq_beta}, {self.hgq_cover})"
            raise UsageError(msg)

    @property
    def firmware_score_type(self) -> FixedType:
        """The type of the firmware's score before any prior (``firmware.head`` declares the same):
        ``score_type``, else the exact sum of the squared ``error_type`` terms -- 57 errors for an
        autoencoder, the latent means for a VAE, one output for a student, the features for vicreg."""
        terms = {"mse": 57, "mu2": self.latent, "distilled": 1}.get(self.score, self.encoder[-1] if self.encoder else 1)
        return declared_score_type(self.error_type, self.score_type, terms)

    @property
    def score_step(self) -> float:
        """The firmware score's resolution in the software's units: one mantissa of
        :attr:`firmware_score_type`, over the number of error terms for an autoencoder's mean."""
        lsb = self.firmware_score_type.lsb
        return lsb / 57 if self.score == "mse" else lsb

    @property
    def score_ceiling(self) -> float:
        """The largest score the firmware can put out, in the software's units."""
        top = self.firmware_score_type.max_value
        return top / 57 if self.score == "mse" else top

    @property
    def parameters_hint(self) -> str:
        if self.kind == "student":
            return "-".join(str(w) for w in (57, *self.encoder, 1))
        if self.kind == "vicreg":
            return "-".join(str(w) for w in (57, *self.encoder, *self.decoder, self.latent, *reversed(self.decoder),
                                             self.encoder[-1]))
        if self.kind == "flow":
            return f"{self.blocks} affine couplings, conditioners 57-{'-'.join(map(str, self.encoder))}-114"
        widths = (57, *self.encoder, self.latent, *self.decoder, 57)
        return "-".join(str(w) for w in widths)


@dataclass(frozen=True)
class TrainingConfig:
    """How to train: splits of the SM file, optimiser and the seed-003 schedule."""

    seed: int = 1
    max_events: int = 0  # 0: every event of the file
    validation_fraction: float = 0.2
    test_fraction: float = 0.2  # held out for thresholds and evaluation, never trained on
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 1e-3
    early_stopping_patience: int = 10  # epochs without a better validation loss
    lr_patience: int = 5  # then the learning rate is halved
    lr_factor: float = 0.5
    accept_rate: str = "1kHz"  # the working point the stored threshold is calibrated to
    bx_rate: str = "40MHz"
    # a student's teacher: the artifact directory whose anomaly score it learns (models.distill)
    teacher: str = ""
    # the quantized model starts from the float twin's weights and is trained quantization-aware
    # for at most qat_epochs (-1: training.epochs) at qat_learning_rate (0: training.learning_rate);
    # qat_epochs = 0 quantizes the twin's weights as they are (post-training quantization), which
    # keeps the twin's far tail where a full quantization-aware training re-fits the SM bulk
    qat_epochs: int = -1
    qat_learning_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (0 < self.validation_fraction < 1 and 0 < self.test_fraction < 1
                and self.validation_fraction + self.test_fraction < 1):
            msg = "training fractions must be in (0, 1) and leave events to train on"
            raise UsageError(msg)
        if self.epochs < 1 or self.batch_size < 1:
            msg = "training.epochs and training.batch_size must be >= 1"
            raise UsageError(msg)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def as_dict(self) -> dict[str, Any]:
        return {"model": asdict(self.model), "training": asdict(self.training)}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        unknown = set(data) - {"model", "training"}
        if unknown:
            msg = f"unknown configuration table(s): {', '.join(sorted(unknown))}"
            raise UsageError(msg)
        return cls(_build(ModelConfig, data.get("model", {}), "model"),
                   _build(TrainingConfig, data.get("training", {}), "training"))


def _build(kind: type, values: Mapping[str, Any], table: str) -> Any:
    known = {f.name: f for f in fields(kind)}
    unknown = set(values) - set(known)
    if unknown:
        msg = (
            f"unknown key(s) in [{table}]: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(known)}"
        )
        raise UsageError(msg)
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return kind(**converted)
    except TypeError as err:
        msg = f"[{table}]: {err}"
        raise UsageError(msg) from err


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare string such as relu


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read a TOML configuration and apply ``table.key=value`` overrides (values in JSON)."""
    data: dict[str, dict[str, Any]] = {"model": {}, "training": {}}
    if path is not None:
        try:
            loaded = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            msg = f"{path}: no such configuration file"
            raise UsageError(msg) from None
        except tomllib.TOMLDecodeError as err:
            msg = f"{path}: not valid TOML ({err})"
            raise UsageError(msg) from err
        for table, values in loaded.items():
            data.setdefault(table, {}).update(values if isinstance(values, dict) else {})
    for item in overrides:
        key, sep, value = item.partition("=")
        table, dot, name = key.strip().partition(".")
        if not sep or not dot:
            msg = f"override {item!r}: expected table.key=value, e.g. model.latent=4"
            raise UsageError(msg)
        data.setdefault(table, {})[name] = _parse_value(value.strip())
    return Config.from_dict(data)

