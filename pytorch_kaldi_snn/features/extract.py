"""Fbank and MFCC features as Kaldi's ``compute-fbank-feats`` / ``compute-mfcc-feats`` make them.

kaldi-native-fbank computes the features; this module maps Kaldi's conf-file options onto
its option structs, reads audio with Kaldi's own wave code (kaldi-native-io, so ``wav.scp``
pipes work and samples arrive at int16 scale as in Kaldi), and lays out the outputs like
``steps/make_{fbank,mfcc}.sh`` + ``steps/compute_cmvn_stats.sh``.

Measured against Kaldi (tests/fixtures/kaldi_golden, dither 0): frame counts are identical
(snip-edges framing); fbank40 max |diff| 1.4e-3 and MFCC-13 max |diff| 2.7e-3 (log-energy
scale), from float32 FFT/rounding differences between the two implementations.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Tuple, Union

import kaldi_native_fbank as knf
import numpy as np

from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.features.transforms import speaker_cmvn_stats
from pytorch_kaldi_snn.io.data_dir import DataDir
from pytorch_kaldi_snn.io.segments import read_segment_waves, read_segments
from pytorch_kaldi_snn.io.tables import (
    atomic_outputs,
    read_kaldi_map,
    read_matrices,
    read_waves,
    write_double_matrices,
    write_kaldi_map,
    write_mat_ark,
)

KINDS = ("fbank", "mfcc")

# Kaldi option name -> (options group, kaldi-native-fbank field, value parser).
# Groups: "frame" = FrameExtractionOptions, "mel" = MelBanksOptions, "top" = Fbank/MfccOptions.
_Parser = Callable[[str], Any]


def parse_kaldi_bool(text: str) -> bool:
    """Kaldi's ParseOptions booleans (an empty value, from a bare ``--flag``, means true)."""
    lowered = text.lower()
    if lowered in ("true", "t", "1", ""):
        return True
    if lowered in ("false", "f", "0"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


_COMMON: dict[str, Tuple[str, str, _Parser]] = {
    "sample-frequency": ("frame", "samp_freq", float),
    "frame-shift": ("frame", "frame_shift_ms", float),
    "frame-length": ("frame", "frame_length_ms", float),
    "dither": ("frame", "dither", float),
    "preemphasis-coefficient": ("frame", "preemph_coeff", float),
    "remove-dc-offset": ("frame", "remove_dc_offset", parse_kaldi_bool),
    "window-type": ("frame", "window_type", str),
    "round-to-power-of-two": ("frame", "round_to_power_of_two", parse_kaldi_bool),
    "blackman-coeff": ("frame", "blackman_coeff", float),
    "snip-edges": ("frame", "snip_edges", parse_kaldi_bool),
    "num-mel-bins": ("mel", "num_bins", int),
    "low-freq": ("mel", "low_freq", float),
    "high-freq": ("mel", "high_freq", float),
    "vtln-low": ("mel", "vtln_low", float),
    "vtln-high": ("mel", "vtln_high", float),
    "debug-mel": ("mel", "debug_mel", parse_kaldi_bool),
    "use-energy": ("top", "use_energy", parse_kaldi_bool),
    "energy-floor": ("top", "energy_floor", float),
    "raw-energy": ("top", "raw_energy", parse_kaldi_bool),
    "htk-compat": ("top", "htk_compat", parse_kaldi_bool),
}
_OPTIONS: dict[str, dict[str, Tuple[str, str, _Parser]]] = {
    "fbank": {
        **_COMMON,
        "use-log-fbank": ("top", "use_log_fbank", parse_kaldi_bool),
        "use-power": ("top", "use_power", parse_kaldi_bool),
    },
    "mfcc": {
        **_COMMON,
        "num-ceps": ("top", "num_ceps", int),
        "cepstral-lifter": ("top", "cepstral_lifter", float),
    },
}
# Kaldi's default dither is 1.0 at int16 scale; kaldi-native-fbank's 3e-5 assumes [-1, 1].
_KALDI_DEFAULTS = {"dither": "1.0"}


@dataclass(frozen=True)
class FeatureConf:
    """Feature kind plus Kaldi command-line options (``{"num-mel-bins": "40"}``).

    ``source`` names the conf file in error messages. Options are validated on creation.
    """

    kind: str
    options: dict[str, str] = field(default_factory=dict)
    source: str = "<options>"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            message = f"feature kind must be one of {', '.join(KINDS)}, got {self.kind!r}"
            raise ConfigError(message, file=self.source)
        self.knf_options()

    @classmethod
    def from_file(cls, kind: str, conf_file: Union[str, os.PathLike]) -> "FeatureConf":
        """Parse a Kaldi conf file: one ``--name=value`` (or bare ``--flag``) per line, ``#`` comments."""
        source = os.fspath(conf_file)
        try:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise ConfigError(f"cannot read feature conf ({err.strerror})", file=source) from None
        options = {}
        for line in lines:
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            if not text.startswith("--"):
                raise ConfigError(f"expected --name=value, got {text!r}", file=source)
            name, _, value = text[2:].partition("=")
            options[name] = value
        return cls(kind, options, source)

    @property
    def sample_rate(self) -> int:
        """``--sample-frequency`` (Kaldi's default 16000): the only rate the features take."""
        return int(self.knf_options().frame_opts.samp_freq)

    def knf_options(self) -> Any:
        """Build ``knf.FbankOptions`` / ``knf.MfccOptions`` with Kaldi's defaults and these options."""
        opts = knf.FbankOptions() if self.kind == "fbank" else knf.MfccOptions()
        table = _OPTIONS[self.kind]
        for name, value in {**_KALDI_DEFAULTS, **self.options}.items():
            if name not in table:
                message = f"unsupported option for compute-{self.kind}-feats"
                raise ConfigError(message, file=self.source, key=f"--{name}")
            group, attr, parse = table[name]
            target = {"frame": opts.frame_opts, "mel": opts.mel_opts, "top": opts}[group]
            try:
                setattr(target, attr, parse(value))
            except ValueError as err:
                raise ConfigError(f"bad value {value!r} ({err})", file=self.source, key=f"--{name}") from None
        self._check_constructible(opts)
        return opts

    def _check_constructible(self, opts: Any) -> None:
        try:
            _computer(self.kind, opts)
        except (ValueError, RuntimeError) as err:
            raise ConfigError(f"invalid feature options ({err})", file=self.source) from None


def _computer(kind: str, opts: Any) -> Any:
    return knf.OnlineFbank(opts) if kind == "fbank" else knf.OnlineMfcc(opts)


def compute_features(
    wav_scp: Union[str, os.PathLike], conf: FeatureConf, segments: Optional[Path] = None,
) -> Iterator[Tuple[str, np.ndarray]]:
    """Yield ``(utt, (T, D) float32)`` for every entry of ``wav_scp`` (paths or ``cmd |``), or
    with a ``segments`` file for every segment of its recordings (as ``extract-segments``).

    Relative wav paths are resolved against the current directory, as Kaldi does.
    """
    opts = conf.knf_options()
    wav_rspecifier = f"scp:{os.fspath(wav_scp)}"
    waves = read_waves(wav_rspecifier) if segments is None else \
        read_segment_waves(wav_scp, read_segments(segments), segments)
    for utt, (sample_rate, samples) in waves:
        _check_audio(sample_rate, samples, opts.frame_opts.samp_freq, wav_rspecifier, utt)
        yield utt, _extract(conf.kind, opts, samples[0])


def _check_audio(sample_rate: float, samples: np.ndarray, expected: float, source: str, utt: str) -> None:
    """Kaldi's compute-*-feats (default --channel=-1, no resampling) accepts only this."""
    if sample_rate != expected:
        raise DataError(f"sample rate {sample_rate:g} Hz, conf expects {expected:g} Hz", file=source, utt=utt)
    if samples.shape[0] != 1:
        raise DataError(f"{samples.shape[0]} channels; only mono audio is supported", file=source, utt=utt)


def _extract(kind: str, opts: Any, samples: np.ndarray) -> np.ndarray:
    computer = _computer(kind, opts)
    computer.accept_waveform(opts.frame_opts.samp_freq, samples)
    computer.input_finished()
    frames = [computer.get_frame(i) for i in range(computer.num_frames_ready)]
    return np.array(frames, np.float32).reshape(len(frames), computer.dim)


@dataclass(frozen=True)
class FeatsLayout:
    """Files written by :func:`make_feats` (Kaldi's make_*.sh + compute_cmvn_stats.sh layout)."""

    feats_ark: Path
    feats_scp: Path
    utt2num_frames: Path
    cmvn_ark: Path
    cmvn_scp: Path


def make_feats(
    data_dir: Union[str, os.PathLike],
    kind: str,
    conf_file: Union[str, os.PathLike],
    out_dir: Union[str, os.PathLike],
    compress: bool = True,
) -> FeatsLayout:
    """Compute features and per-speaker CMVN stats for a data dir, laid out as Kaldi does.

    Writes ``out_dir/raw_<kind>_<name>.1.{ark,scp}`` (compressed by default, as
    ``make_<kind>.sh``), ``out_dir/cmvn_<name>.{ark,scp}``, and in the data dir
    ``feats.scp``, ``cmvn.scp``, ``utt2num_frames`` and ``conf/<kind>.conf``. CMVN stats are
    computed from the features as read back, like ``compute_cmvn_stats.sh`` reading feats.scp.
    """
    data = DataDir.load(Path(data_dir))
    if data.wav is None:
        raise DataError("missing (needed to compute features)", file=str(data.root / "wav.scp"))
    conf = FeatureConf.from_file(kind, conf_file)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    name = data.root.resolve().name
    layout = FeatsLayout(
        feats_ark=out / f"raw_{kind}_{name}.1.ark",
        feats_scp=out / f"raw_{kind}_{name}.1.scp",
        utt2num_frames=data.root / "utt2num_frames",
        cmvn_ark=out / f"cmvn_{name}.ark",
        cmvn_scp=out / f"cmvn_{name}.scp",
    )
    segments = data.root / "segments" if data.segments is not None else None
    write_mat_ark(layout.feats_ark, layout.feats_scp, compute_features(data.root / "wav.scp", conf, segments),
                  compress)
    feats = dict(read_matrices(layout.feats_scp))
    write_kaldi_map(layout.utt2num_frames, {utt: len(mat) for utt, mat in feats.items()})
    stats = speaker_cmvn_stats(feats, data.spk2utt)
    write_double_matrices(layout.cmvn_ark, layout.cmvn_scp, stats.items())
    write_kaldi_map(data.root / "feats.scp", read_kaldi_map(layout.feats_scp))
    write_kaldi_map(data.root / "cmvn.scp", read_kaldi_map(layout.cmvn_scp))
    (data.root / "conf").mkdir(exist_ok=True)
    with atomic_outputs(data.root / "conf" / f"{kind}.conf") as (temp,):
        shutil.copyfile(conf_file, temp)
    return layout


def make_pytorch_kaldi_feats(
    data_dir: Union[str, os.PathLike], kind: str, conf_file: Union[str, os.PathLike],
    out_dir: Union[str, os.PathLike],
) -> FeatsLayout:
    """:func:`make_feats`, plus the per-speaker CMVN stats copied to ``cmvn_speaker.ark`` in the
    data dir: the file PyTorch-Kaldi's ``fea_opts`` (``apply-cmvn --utt2spk=ark:utt2spk
    ark:cmvn_speaker.ark ...``) read."""
    layout = make_feats(data_dir, kind, conf_file, out_dir)
    with atomic_outputs(Path(data_dir) / "cmvn_speaker.ark") as (temp,):
        shutil.copyfile(layout.cmvn_ark, temp)
    return layout
