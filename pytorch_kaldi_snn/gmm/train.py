"""Monophone HMM-GMM training and Viterbi alignment with kaldi-hmm-gmm (Kaldi's ``train_mono.sh``).

Differences from ``steps/train_mono.sh``, and why:

* No flat start. The synthesizer knows every phone's frames, so the first alignment splits
  each phone segment equally into its 3 HMM states (``initial_alignment``) instead of
  ``align-equal-compiled`` over the whole utterance. EM then only has to find the state
  boundaries inside phones and fix the synthesizer's few boundary errors.
* The transcripts are phone sequences with explicit ``sil`` (TIMIT style), so the training
  graphs use an identity lexicon with no optional silence.

Everything else follows train_mono: one Gaussian per pdf initialised to the global mean and
variance (``gmm-init-mono``), ML re-estimation of Gaussians and transitions (``gmm-est``),
mixing up by ``inc_gauss`` per iteration to ``tot_gauss``, realignment on ``realign_iters``
with acoustic scale 0.1 and self-loop scale 0.1.

Beams: align_si.sh's beam 10, but a retry beam of 1000 instead of 40. A forced-alignment
graph has only 3 states per phone, so a wide beam costs little; with the tiny corpus
(8 training utterances) some pdfs see a handful of frames, and on dev/test speakers retry
beam 40 dropped 5 of 8 utterances, which would leave them without frame labels.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Collection, Mapping, Optional, Sequence

import numpy as np

from pytorch_kaldi_snn.errors import ConfigError, DataError
from pytorch_kaldi_snn.gmm.topology import NUM_STATES, HmmSystem, transition_tuples
from pytorch_kaldi_snn.gmm.topology import identity_lexicon_fst
from pytorch_kaldi_snn.kaldi_ports import kaldi_hmm_gmm as khg
from pytorch_kaldi_snn.kaldi_ports import kaldifst

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonoConfig:
    """Training options, with train_mono.sh's names; defaults suit the synthetic corpus.

    ``num_iters`` is smaller than train_mono's 40 because training starts from the
    synthesizer's alignment, not from a flat start.
    """

    num_iters: int = 15
    tot_gauss: int = 1000
    realign_iters: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 14)
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    beam: float = 10.0
    retry_beam: float = 1000.0
    power: float = 0.2  # mixing-up: Gaussians per pdf grow as occupancy ** power
    perturb_factor: float = 0.01
    seed: int = 0  # for the mixing-up perturbation
    min_count: float = 20.0  # mixing-up: minimum frames per Gaussian
    min_gaussian_occupancy: float = 10.0  # gmm-est default

    def __post_init__(self) -> None:
        if self.num_iters < 1 or self.tot_gauss < 1:
            raise ConfigError("num_iters and tot_gauss must be positive")


@dataclass
class MonoModel:
    """A trained monophone system: HMM structures plus the acoustic model."""

    hmm: HmmSystem
    am: khg.AmDiagGmm
    history: list[float] = field(default_factory=list)  # average log-likelihood per frame, per iteration

    @property
    def trans_model(self) -> khg.TransitionModel:
        """The trained transition model."""
        return self.hmm.trans_model


def _tstate_ids(trans_model: khg.TransitionModel) -> dict[tuple[int, int], int]:
    """``(phone, hmm_state) -> first transition-id`` (the self-loop; the forward one is +1).

    In the 3-state topology every emitting state has exactly two transitions, self-loop
    first, so a transition-state's ids are ``state2id[s]`` and ``state2id[s] + 1``.
    """
    state2id = trans_model.__getstate__()[2]
    tuples = transition_tuples(trans_model)
    return {(int(t[0]), int(t[1])): state2id[i + 1] for i, t in enumerate(tuples)}


def _segments(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal labels as ``(label, start, end)``."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def initial_alignment(trans_model: khg.TransitionModel, phone_frames: np.ndarray) -> np.ndarray:
    """Transition-ids from a per-frame phone labelling: each phone run split equally into 3 states.

    A state's last frame takes the forward transition, the others the self-loop. Runs
    shorter than 3 frames skip states; the result is only used to accumulate first stats.
    """
    first_tid = _tstate_ids(trans_model)
    tids = np.empty(len(phone_frames), dtype=np.int32)
    for phone, start, end in _segments(np.asarray(phone_frames)):
        for state, frames in enumerate(np.array_split(np.arange(start, end), NUM_STATES)):
            if frames.size:
                tids[frames] = first_tid[(phone, state)]
                tids[frames[-1]] += 1
    return tids


def _global_gmm(feats: Mapping[str, np.ndarray]) -> khg.DiagGmm:
    """One Gaussian with the global mean and variance, as ``gmm-init-mono``."""
    stacked = np.concatenate(list(feats.values())).astype(np.float64)
    # Floored at gmm-est's default --min-variance, so a constant dimension cannot break gconsts.
    mean, var = stacked.mean(axis=0), np.maximum(stacked.var(axis=0), 1e-3)
    gmm = khg.DiagGmm(nmix=1, dim=stacked.shape[1])
    gmm.set_weights(np.ones(1, np.float32))
    gmm.set_means(mean[None].astype(np.float32))
    gmm.set_invvars((1.0 / var)[None].astype(np.float32))
    gmm.compute_gconsts()
    return gmm


def init_model(hmm: HmmSystem, feats: Mapping[str, np.ndarray]) -> MonoModel:
    """``gmm-init-mono``: every pdf starts as the global Gaussian."""
    am = khg.AmDiagGmm()
    gmm = _global_gmm(feats)
    for _ in range(hmm.trans_model.num_pdfs):
        am.add_pdf(gmm)
    return MonoModel(hmm, am)


def _accumulate(
    model: MonoModel, feats: Mapping[str, np.ndarray], alis: Mapping[str, np.ndarray]
) -> tuple[khg.AccumAmDiagGmm, np.ndarray]:
    """``gmm-acc-stats-ali``: GMM and transition statistics from fixed alignments."""
    tm = model.trans_model
    gmm_accs = khg.AccumAmDiagGmm()
    gmm_accs.init(model=model.am, flags=khg.GmmUpdateFlags.kGmmAll)
    tid2pdf = np.asarray(tm.transition_id_to_pdf_array())
    counts = np.zeros(tm.num_transition_ids + 1)
    for utt, ali in alis.items():
        counts += np.bincount(ali, minlength=len(counts))
        for frame, pdf in zip(feats[utt], tid2pdf[ali]):
            gmm_accs.accumulate_for_gmm(model=model.am, data=frame, gmm_index=int(pdf), weight=1.0)
    trans_accs = tm.init_stats()
    for tid in np.flatnonzero(counts):
        trans_accs = tm.accumulate(prob=float(counts[tid]), trans_id=int(tid), stats=trans_accs)
    return gmm_accs, trans_accs


def _perturb_split_copies(am: khg.AmDiagGmm, factor: float, rng: np.random.Generator) -> None:
    """Move each duplicated Gaussian's mean by ``factor`` standard deviations in a random direction.

    kaldi-hmm-gmm's own split perturbation draws from an RNG that Python cannot seed, so
    Gaussians are split unperturbed and perturbed here, making training reproducible.
    """
    for pdf in range(am.num_pdfs):
        gmm = am.get_pdf(pdf)  # keep a reference: the arrays below are views into it
        means, variances = np.array(gmm.means), np.array(gmm.vars)
        seen: set[bytes] = set()
        for gauss, mean in enumerate(means):
            if mean.tobytes() in seen:
                shift = factor * np.sqrt(variances[gauss]) * rng.standard_normal(len(mean))
                am.set_gaussian_mean(pdf, gauss, (mean + shift).astype(np.float32))
            seen.add(mean.tobytes())
    am.compute_gconsts()


def _update(
    model: MonoModel, gmm_accs: khg.AccumAmDiagGmm, trans_accs: np.ndarray, target_gauss: int,
    config: MonoConfig, rng: np.random.Generator,
) -> None:
    """``gmm-est --mix-up``: ML update of transitions and Gaussians, then mixing up."""
    model.trans_model.mle_update(trans_accs, khg.MleTransitionUpdateConfig())
    opts = khg.MleDiagGmmOptions()
    opts.min_gaussian_occupancy = config.min_gaussian_occupancy
    flags = int(khg.GmmUpdateFlags.kGmmAll)
    khg.mle_am_diag_gmm_update(config=opts, amdiag_gmm_acc=gmm_accs, flags=flags, am_gmm=model.am)
    occs = np.array([gmm_accs.get_acc(i).occupancy.sum() for i in range(gmm_accs.num_accs)], np.float32)
    if target_gauss > model.am.num_gauss:
        model.am.split_by_count(
            state_occs=occs, target_components=target_gauss, perturb_factor=0.0,
            power=config.power, min_count=config.min_count,
        )
        _perturb_split_copies(model.am, config.perturb_factor, rng)


class Aligner:
    """Forced alignment of phone transcripts with a model (``compile-train-graphs`` + ``gmm-align-compiled``)."""

    def __init__(self, hmm: HmmSystem, phone_ids: Sequence[int], config: MonoConfig,
                 lexicon: Optional[kaldifst.StdVectorFst] = None) -> None:
        """Transcripts are phone ids (an identity L), or word ids of ``lexicon`` (an
        olabel-sorted L.fst, gmm/lexicon_fst.py)."""
        self.config = config
        if lexicon is None:
            lexicon = identity_lexicon_fst(phone_ids)
            kaldifst.arcsort(lexicon, sort_type="olabel")
        self._compiler = khg.TrainingGraphCompiler(
            trans_model=hmm.trans_model, ctx_dep=hmm.tree, lex_fst=lexicon, disambig_syms=[],
            opts=khg.TrainingGraphCompilerOptions(),
        )
        self._graphs: dict[tuple[int, ...], kaldifst.StdVectorFst] = {}

    def _graph(self, transcript: Sequence[int]) -> kaldifst.StdVectorFst:
        key = tuple(transcript)
        if key not in self._graphs:
            self._graphs[key] = self._compiler.compile_graph_from_text(list(key))
        return self._graphs[key].copy()

    def align(self, model: MonoModel, utt: str, feats: np.ndarray, transcript: Sequence[int]) -> Optional[np.ndarray]:
        """Viterbi alignment (transition-ids), or ``None`` if it fails even with the retry beam."""
        cfg = self.config
        graph = self._graph(transcript)
        khg.add_transition_probs(
            trans_model=model.trans_model, transition_scale=cfg.transition_scale,
            self_loop_scale=cfg.self_loop_scale, fst=graph,
        )
        decodable = khg.DecodableAmDiagGmmScaled(
            am=model.am, tm=model.trans_model, feats=feats, scale=cfg.acoustic_scale
        )
        result = khg.align_utterance_wrapper(
            config=khg.AlignConfig(beam=cfg.beam, retry_beam=cfg.retry_beam), utt=utt,
            acoustic_scale=cfg.acoustic_scale, fst=graph, decodable=decodable,
            num_done=0, num_error=0, num_retried=0, tot_like=0.0, frame_count=0,
        )
        num_done, alignment = result[0], result[5]
        return np.asarray(alignment, dtype=np.int32) if num_done == 1 else None

    def align_all(
        self, model: MonoModel, feats: Mapping[str, np.ndarray], transcripts: Mapping[str, Sequence[int]]
    ) -> dict[str, np.ndarray]:
        """Align every utterance; failures are left out. The caller names them once
        (:func:`log_failed`, or its own line that also says what becomes of them)."""
        alis = {}
        for utt, utt_feats in feats.items():
            ali = self.align(model, utt, utt_feats, transcripts[utt])
            if ali is not None:
                alis[utt] = ali
        return alis


def log_failed(utts: Collection[str], alis: Mapping[str, np.ndarray]) -> None:
    """The utterances of ``utts`` without an alignment, sorted, in one log line as Kaldi logs them."""
    failed = sorted(set(utts) - set(alis))
    if failed:
        log.warning("alignment failed for %d of %d utterances: %s", len(failed), len(utts), " ".join(failed))


def _check_inputs(feats: Mapping[str, np.ndarray], phone_frames: Mapping[str, np.ndarray]) -> None:
    for utt, utt_feats in feats.items():
        if utt not in phone_frames:
            raise DataError("no synthesizer alignment", utt=utt)
        if len(phone_frames[utt]) != len(utt_feats):
            message = f"{len(utt_feats)} feature frames but {len(phone_frames[utt])} alignment frames"
            raise DataError(message, utt=utt)


def train_mono(
    hmm: HmmSystem,
    feats: Mapping[str, np.ndarray],
    phone_frames: Mapping[str, np.ndarray],
    config: MonoConfig = MonoConfig(),
) -> tuple[MonoModel, Aligner]:
    """Train from the synthesizer's per-frame phone ids; return the model and its aligner.

    ``feats`` are the GMM features (MFCC + CMVN + deltas), ``phone_frames`` the lang's phone
    ids per frame, of equal lengths.
    """
    _check_inputs(feats, phone_frames)
    model = init_model(hmm, feats)
    transcripts = {utt: [seg[0] for seg in _segments(np.asarray(p))] for utt, p in phone_frames.items()}
    aligner = Aligner(hmm, hmm.topo.phones, config)
    alis = {utt: initial_alignment(model.trans_model, phone_frames[utt]) for utt in feats}
    num_gauss = model.am.num_gauss
    rng = np.random.default_rng(config.seed)
    max_iter_inc = max(1, config.num_iters * 3 // 4)
    inc_gauss = max(0, (config.tot_gauss - num_gauss) // max_iter_inc)
    for it in range(config.num_iters):
        if it in config.realign_iters:
            alis = aligner.align_all(model, feats, transcripts)
            log_failed(feats, alis)
            if not alis:
                raise DataError(f"iteration {it}: no utterance could be aligned")
        gmm_accs, trans_accs = _accumulate(model, feats, alis)
        model.history.append(gmm_accs.tot_log_like / max(gmm_accs.tot_count, 1.0))
        _update(model, gmm_accs, trans_accs, num_gauss, config, rng)
        log.info("iteration %d: %.3f log-like/frame, %d Gaussians", it, model.history[-1], model.am.num_gauss)
        if it < max_iter_inc:
            num_gauss = min(config.tot_gauss, num_gauss + inc_gauss)
    return model, aligner
