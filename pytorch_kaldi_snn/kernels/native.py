"""Native (C) per-time-step kernels for the fused spiking recurrences, built on first use.

The element-wise part of one time step of Eq. 7-8 / 16-21 plus the quantiser (Eq. 22) is a
handful of arithmetic operations per neuron; issued as separate PyTorch operators it costs
about ten kernel launches and ten passes over memory per step. These kernels do the whole
step (and its hand-written backward) in one pass. They are plain C with no PyTorch headers,
so the build takes about a second with the system C compiler; the shared objects are cached
under ``$PYTORCH_KALDI_SNN_CACHE`` (default ``~/.cache/pytorch_kaldi_snn``) keyed by a hash of
the source, and loaded with :mod:`ctypes`.

The integer codes of the surrogates and of the neurons are not written in the C source: the
build prepends ``#define SURROGATE_<NAME>`` / ``NEURON_<NAME>`` lines generated from
:mod:`pytorch_kaldi_snn.neurons` for what :data:`SURROGATES` and :data:`NEURONS` declare, and a
kernel given any other code does nothing and returns :data:`UNKNOWN_CODE` (raised by
:func:`check_status`), never a default.

When no compiler is available or the build fails, :func:`load` returns ``None`` and
:mod:`pytorch_kaldi_snn.kernels.fused` uses its PyTorch-operator step functions instead; the
log says which path ran. ``PYTORCH_KALDI_SNN_KERNEL=torch`` forces the PyTorch path
(:mod:`.backend`).
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from pytorch_kaldi_snn.neurons.surrogate import SURROGATES as SURROGATE_TABLE
from pytorch_kaldi_snn.neurons.variants import NEURONS as NEURON_TABLE
from pytorch_kaldi_snn.neurons.variants import NotImplementedByBackend

log = logging.getLogger(__name__)

# What the C source implements: ``stream_frame`` every neuron below, ``lif_*`` the traditional
# layer and ``gated_*`` v1 and v2 (the caller adds v2's recurrent product); every surrogate below.
NEURONS: Tuple[str, ...] = ("traditional", "v1", "v2")
SURROGATES: Tuple[str, ...] = ("ste", "ste_clip", "pwl", "fast_sigmoid")
UNKNOWN_CODE = -1  # what a kernel returns for a code it does not implement

# Symbols: B batch rows, n neurons, mask (B,n) recurrent dropout (ones when off: a possibly
# NULL pointer would stop the compiler from vectorising the loads), c reset scale
# (R = c*Y, Eq. 8 / 22), delta = b/2^N, gamma = k*delta, qmax = 2^N - 1,
# kind = surrogate code (SURROGATE_<NAME>, generated), neuron = NEURON_<NAME> (generated).
# Backward carries, all (B,n): dv_c = alpha*dV[t+1], dy_c = dL/dY[t] from step t+1
# (-c*dV[t+1] plus v2's recurrent term, added by the caller), di_c = dL/dI[t] from step t+1.
_SOURCE = r"""
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

typedef REAL real;
#define R restrict

static inline real quantise(real v, real delta, real gamma, real qmax) {
    real q = FLOOR(v / delta);
    q = q < 1 ? 1 : q;
    q = q > qmax ? qmax : q;
    return v > gamma ? q * delta : 0;
}

static inline int known_surrogate(int kind) {
    return kind == SURROGATE_STE || kind == SURROGATE_STE_CLIP || kind == SURROGATE_PWL ||
           kind == SURROGATE_FAST_SIGMOID;
}

/* kind must pass known_surrogate (checked once per call by the entry points). */
static inline real surrogate(real v, real gamma, real b, int kind) {
    if (kind == SURROGATE_STE_CLIP) return v > b ? 0 : 1;
    real d = gamma - v;
    d = v - b > d ? v - b : d;
    d = (d > 0 ? d : 0) / b;
    if (kind == SURROGATE_STE) return 1;
    if (kind == SURROGATE_PWL) return d < 0.5 ? 1 - 2 * d : 0;
    real s = 1 + 10 * d; /* SURROGATE_FAST_SIGMOID */
    return 1 / (s * s);
}

void lif_fwd(long B, long n, const real *R drive, const real *R mask, const real *R alpha,
             const real *R beta, const real *R i_prev, const real *R v_prev,
             const real *R y_prev, real *R i_out, real *R v_out, real *R y_out,
             real c, real delta, real gamma, real qmax) {
    for (long r = 0; r < B; ++r)
        for (long j = 0; j < n; ++j) {
            long x = r * n + j;
            real in = mask[x] * drive[x];
            real i = beta[j] * i_prev[x] + in;
            real v = alpha[j] * v_prev[x] + i - c * y_prev[x];
            i_out[x] = i;
            v_out[x] = v;
            y_out[x] = quantise(v, delta, gamma, qmax);
        }
}

/* f = sigma(G_f) is computed by the caller (vectorised PyTorch sigmoid). */
void gated_fwd(long B, long n, const real *R gates, const real *R f_in, const real *R mask,
               const real *R alpha, const real *R i_prev, const real *R v_prev,
               const real *R y_prev, real *R i_out, real *R v_out, real *R y_out,
               real *R c_out, real c, real delta, real gamma, real qmax) {
    for (long r = 0; r < B; ++r)
        for (long j = 0; j < n; ++j) {
            long x = r * n + j;
            real f = f_in[x];
            real cand = gates[r * 2 * n + n + j];
            cand = cand > 0 ? cand : 0;
            cand *= mask[x];
            real i = f * i_prev[x] + (1 - f) * cand;
            real v = alpha[j] * v_prev[x] + i - c * y_prev[x];
            c_out[x] = cand;
            i_out[x] = i;
            v_out[x] = v;
            y_out[x] = quantise(v, delta, gamma, qmax);
        }
}

/* Shared membrane part of the backward step: returns dL/dV[t], updates dv_c, dy_c. */
static inline real membrane_bwd(long x, long j, const real *R gy, const real *R v,
                                const real *R alpha, real *R dv_c, real *R dy_c,
                                real c, real gamma, real b, int kind) {
    real dy = gy[x] + dy_c[x];
    real dv = dv_c[x] + surrogate(v[x], gamma, b, kind) * dy;
    dv_c[x] = alpha[j] * dv;
    dy_c[x] = -c * dv;
    return dv;
}

long lif_bwd(long B, long n, const real *R gy, const real *R v, const real *R v_prev,
             const real *R i_prev, const real *R mask, const real *R alpha, const real *R beta,
             real *R dv_c, real *R dy_c, real *R di_c, double *R dalpha, double *R dbeta,
             real *R d_drive, real c, real gamma, real b, int kind) {
    if (!known_surrogate(kind)) return UNKNOWN_CODE;
    for (long r = 0; r < B; ++r)
        for (long j = 0; j < n; ++j) {
            long x = r * n + j;
            real dv = membrane_bwd(x, j, gy, v, alpha, dv_c, dy_c, c, gamma, b, kind);
            real di = dv + di_c[x];
            dalpha[j] += (double)dv * v_prev[x];
            if (i_prev) dbeta[j] += (double)di * i_prev[x]; /* NULL when beta is fixed */
            d_drive[x] = mask[x] * di;
            di_c[x] = beta[j] * di;
        }
    return 0;
}

long gated_bwd(long B, long n, const real *R gy, const real *R v, const real *R v_prev,
               const real *R i_prev, const real *R f_in, const real *R c_in, const real *R mask,
               const real *R alpha, real *R dv_c, real *R dy_c, real *R di_c,
               double *R dalpha, real *R d_gates, real c, real gamma, real b, int kind) {
    if (!known_surrogate(kind)) return UNKNOWN_CODE;
    for (long r = 0; r < B; ++r)
        for (long j = 0; j < n; ++j) {
            long x = r * n + j;
            real dv = membrane_bwd(x, j, gy, v, alpha, dv_c, dy_c, c, gamma, b, kind);
            real di = dv + di_c[x];
            real f = f_in[x];
            dalpha[j] += (double)dv * v_prev[x];
            d_gates[r * 2 * n + j] = di * (i_prev[x] - c_in[x]) * f * (1 - f);
            /* C = mask*ReLU(pre): for mask > 0, pre > 0 exactly when C > 0. */
            real dc = c_in[x] > 0 ? di * (1 - f) : 0;
            d_gates[r * 2 * n + n + j] = mask[x] * dc;
            di_c[x] = f * di;
        }
    return 0;
}

/* dst[j] += xs[0] * rows[0][j] + ... + xs[k-1] * rows[k-1][j] for j in [lo, hi), added one
   row after the other (left to right, as k separate passes would), in one pass over dst. */
static void add_rows(long k, const real *xs, const real *const *rows, long lo, long hi,
                     real *R dst) {
    if (k == 4) {
        const real *R r0 = rows[0], *R r1 = rows[1], *R r2 = rows[2], *R r3 = rows[3];
        for (long j = lo; j < hi; ++j)
            dst[j] = dst[j] + xs[0] * r0[j] + xs[1] * r1[j] + xs[2] * r2[j] + xs[3] * r3[j];
        return;
    }
    for (long q = 0; q < k; ++q) {
        const real *R row = rows[q];
        for (long j = lo; j < hi; ++j) dst[j] += xs[q] * row[j];
    }
}

/* acc[j] += x[r] * W[r, j] over the non-zero x[r], r ascending (only the rows of active
   inputs), for the columns [lo, hi) and, for gated neurons (second = n), the candidate-gate
   columns [n + lo, n + hi) into cand[j]: one thread's neurons. Rows go four at a time (fewer
   passes over acc, more reads in flight). Each sum gets the same operations in the same order
   however the rows are grouped and the neurons split between threads. */
static void add_active_rows(long rows, long w, long lo, long hi, long second,
                            const real *R x, const real *R W, real *R acc, real *R cand) {
    for (long r = 0; r < rows;) {
        const real *group[4], *shifted[4];
        real xs[4];
        long k = 0;
        for (; r < rows && k < 4; ++r)
            if (x[r] != 0) {
                xs[k] = x[r];
                group[k] = W + r * w;
                shifted[k++] = W + r * w + second;
            }
        add_rows(k, xs, group, lo, hi, acc);
        if (second) add_rows(k, xs, shifted, lo, hi, cand);
    }
}

/* One layer of a streaming frame (stream_frame): its eval-mode constants, its batch-1 state and
   scratch. W (m, w) is the projection with eval batch norm folded in, bias (w); w = n
   (traditional) or 2n (v1, v2). w_rec (n, 2n) for v2, beta (n) for the traditional layer,
   otherwise unused. State i, v, y (n) is updated in place; y_prev (n) and acc are scratch, acc
   of w + 64 bytes: gated neurons' candidate sums start at the first 64-byte line after n (so
   that threads never share a line of acc).
   active counts the non-zero outputs since the caller last zeroed it. */
typedef struct {
    long neuron, m, n;
    const real *W, *bias, *w_rec, *alpha, *beta;
    real *i, *v, *y, *y_prev, *acc;
    real c, delta, gamma, qmax;
    long active;
} stream_layer;

/* Neurons [lo, hi) of one layer's frame with input x; returns their non-zero outputs. Reads Ŷ of
   the frame before from y_prev (v2's recurrence reads all of it while threads write y). */
static long stream_neurons(const stream_layer *L, long lo, long hi, const real *R x) {
    int traditional = L->neuron == NEURON_TRADITIONAL;
    long n = L->n, w = traditional ? n : 2 * n, second = traditional ? 0 : n, active = 0;
    const real *R bias = L->bias, *R alpha = L->alpha, *R y_prev = L->y_prev;
    long line = 64 / sizeof(real);
    real *R i = L->i, *R v = L->v, *R y = L->y, *R acc = L->acc;
    real *R cand_sum = L->acc + (n + line - 1) / line * line;
    for (long j = lo; j < hi; ++j) acc[j] = bias[j];
    if (second)
        for (long j = lo; j < hi; ++j) cand_sum[j] = bias[second + j];
    add_active_rows(L->m, w, lo, hi, second, x, L->W, acc, cand_sum);
    if (L->neuron == NEURON_V2)
        add_active_rows(n, w, lo, hi, second, y_prev, L->w_rec, acc, cand_sum);
    /* the gates first, on their own: the loop below then has no call and vectorises */
    for (long j = lo; j < hi && !traditional; ++j) acc[j] = 1 / (1 + EXP(-acc[j]));
    for (long j = lo; j < hi; ++j) {
        if (traditional) {
            i[j] = L->beta[j] * i[j] + acc[j];
        } else {
            real f = acc[j], cand = cand_sum[j] > 0 ? cand_sum[j] : 0;
            i[j] = f * i[j] + (1 - f) * cand;
        }
        v[j] = alpha[j] * v[j] + i[j] - L->c * y_prev[j];
        y[j] = quantise(v[j], L->delta, L->gamma, L->qmax);
        active += y[j] != 0;
    }
    return active;
}

/* Part p of ``parts`` of a layer of n neurons, [*lo, *hi): whole 64-byte lines of every
   per-neuron array, so that two threads never write to the same cache line (the last part is
   shorter; parts past n are empty). */
static void part_range(long n, long p, long parts, long *lo, long *hi) {
    long line = 64 / sizeof(real), size = (n + parts - 1) / parts;
    size = (size + line - 1) / line * line;
    *lo = p * size < n ? p * size : n;
    *hi = *lo + size < n ? *lo + size : n;
}

/* Threads. A frame on several threads is cut into chunks: one part per thread of every layer's
   neurons, layer after layer. The caller's thread publishes the frame and takes chunks itself;
   helper threads (POSIX threads started on first use and kept for the process; no OpenMP
   runtime) take chunks as they come. A chunk of layer l starts once every chunk of layer l-1
   is done (its input is their Ŷ). The caller never waits for a helper that has not taken a
   chunk: a helper that is asleep or off the cores leaves the whole frame to the caller.

   ``ticket`` holds the frame's generation, its chunk count and the next chunk to take, so one
   compare-and-swap takes a chunk of the current frame and nothing else; ``job`` is written
   before a generation is published and not again until all its chunks are done. */
#define MAX_HELPERS 63
#define GEN_SHIFT 40
#define TOTAL_SHIFT 20
#define FIELD ((1L << TOTAL_SHIFT) - 1)

static struct { stream_layer *layers; const real *x; long parts; } job;
static long ticket, done, busy, helpers, sleepers;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

/* Wait until *counter >= target, yielding the core to any other runnable thread. */
static void await_count(long *counter, long target) {
    while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < target) sched_yield();
}

/* Take and compute chunks of generation ``gen`` until none is left. */
static void take_chunks(long gen) {
    long w = __atomic_load_n(&ticket, __ATOMIC_ACQUIRE);
    while (w >> GEN_SHIFT == gen && (w & FIELD) < ((w >> TOTAL_SHIFT) & FIELD)) {
        if (!__atomic_compare_exchange_n(&ticket, &w, w + 1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue; /* w now holds the current ticket */
        long k = w & FIELD, parts = job.parts, l = k / parts, lo, hi;
        stream_layer *L = job.layers + l;
        await_count(&done, l * parts);
        part_range(L->n, k % parts, parts, &lo, &hi);
        long active = stream_neurons(L, lo, hi, l ? job.layers[l - 1].y : job.x);
        __atomic_add_fetch(&L->active, active, __ATOMIC_RELAXED);
        __atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
        w = __atomic_load_n(&ticket, __ATOMIC_ACQUIRE);
    }
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* A helper: takes the chunks of each new generation. After a frame it watches for the next one
   for SPIN_SECONDS (frames streamed back to back follow at once), then sleeps until woken:
   an idle helper stays off the cores, and one that wakes late joins its frame late, but the
   caller never waits for it. */
#define SPIN_SECONDS 30e-6
static void *helper(void *unused) {
    (void)unused;
    for (long seen = 0;;) {
        double since = seconds();
        while (__atomic_load_n(&ticket, __ATOMIC_ACQUIRE) >> GEN_SHIFT == seen &&
               seconds() - since < SPIN_SECONDS)
            ;
        pthread_mutex_lock(&lock);
        while (__atomic_load_n(&ticket, __ATOMIC_ACQUIRE) >> GEN_SHIFT == seen) {
            ++sleepers;
            pthread_cond_wait(&wake, &lock);
            --sleepers;
        }
        seen = __atomic_load_n(&ticket, __ATOMIC_ACQUIRE) >> GEN_SHIFT;
        pthread_mutex_unlock(&lock);
        take_chunks(seen);
    }
    return NULL;
}

/* A forked child has none of the parent's helpers, and its lock may have been copied held. */
static void after_fork_in_child(void) {
    helpers = sleepers = busy = 0;
    pthread_mutex_init(&lock, NULL);
    pthread_cond_init(&wake, NULL);
}

static void register_fork_handler(void) { pthread_atfork(NULL, NULL, after_fork_in_child); }

static void start_helpers(long wanted) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_handler);
    wanted = wanted < MAX_HELPERS ? wanted : MAX_HELPERS;
    for (pthread_t thread; helpers < wanted; ++helpers)
        if (pthread_create(&thread, NULL, helper, NULL) || pthread_detach(thread)) break;
}

/* The frame on the caller's thread alone. */
static void frame_alone(long count, stream_layer *layers, const real *x) {
    for (long l = 0; l < count; ++l)
        layers[l].active += stream_neurons(layers + l, 0, layers[l].n, l ? layers[l - 1].y : x);
}

/* The frame on the caller's thread and up to threads - 1 helpers (see above). */
static void frame_shared(long count, stream_layer *layers, const real *x, long threads) {
    start_helpers(threads - 1);
    job.layers = layers;
    job.x = x;
    job.parts = threads;
    __atomic_store_n(&done, 0, __ATOMIC_RELAXED);
    long gen = ((__atomic_load_n(&ticket, __ATOMIC_RELAXED) >> GEN_SHIFT) + 1) & FIELD;
    long total = count * threads;
    pthread_mutex_lock(&lock); /* a helper checks the generation under it: no lost wake-up */
    __atomic_store_n(&ticket, gen << GEN_SHIFT | total << TOTAL_SHIFT, __ATOMIC_RELEASE);
    if (sleepers) pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    take_chunks(gen);
    await_count(&done, total); /* chunks that helpers took */
}

/* Helpers pay only where a core is free: on a loaded machine a frame shared with a helper that
   is off its core takes longer than the frame alone. So a stream asked to run on several
   threads keeps a running mean of its frames' time shared and alone (its stream_timing, zeroed
   by the caller), runs the faster way, and now and then tries the other: at its first frame
   and after FIRST_PROBE frames, then, each time the other way stays slower, after twice as
   many, up to LAST_PROBE (the results are the same either way). */
#define FIRST_PROBE 16
#define LAST_PROBE 1024
typedef struct {
    double mean_seconds[2]; /* [0] alone, [1] shared; 0 until measured */
    long probe_every, until_probe;
} stream_timing;

/* One frame of ``count`` stacked layers, batch 1, event-driven (streaming inference): x (m of
   the first layer) is the input, each layer's y the next one's. Only the rows of W (and of
   v2's W_r) whose input is non-zero are read. With ``threads`` > 1 the neurons may be shared
   with up to threads - 1 helper threads (see above; one frame at a time per process: a frame
   that finds another in flight runs alone); timing, the stream's, is needed only then. Every
   output element is computed by the same operations in the same order whichever thread
   computes it, so results do not depend on the thread count. Returns 0, or UNKNOWN_CODE
   (before touching any state) if a layer's neuron is not implemented. */
long stream_frame(long count, stream_layer *layers, const real *x, long threads,
                  stream_timing *timing) {
    for (long l = 0; l < count; ++l) {
        long neuron = layers[l].neuron;
        if (neuron != NEURON_TRADITIONAL && neuron != NEURON_V1 && neuron != NEURON_V2)
            return UNKNOWN_CODE;
    }
    for (long l = 0; l < count; ++l)
        for (long j = 0; j < layers[l].n; ++j) layers[l].y_prev[j] = layers[l].y[j];
    long idle = 0;
    if (threads < 2 || count * threads > FIELD ||
        !__atomic_compare_exchange_n(&busy, &idle, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        frame_alone(count, layers, x);
        return 0;
    }
    double *means = timing->mean_seconds;
    if (!timing->probe_every) timing->probe_every = timing->until_probe = FIRST_PROBE;
    int probe = --timing->until_probe == 0;
    int shared = (means[1] <= means[0]) ^ probe; /* an unmeasured way goes first */
    double start = seconds();
    if (shared)
        frame_shared(count, layers, x, threads);
    else
        frame_alone(count, layers, x);
    double took = seconds() - start;
    means[shared] = means[shared] == 0 ? took : means[shared] + (took - means[shared]) / 8;
    if (probe) {
        long every = means[shared] > means[!shared] ? 2 * timing->probe_every : FIRST_PROBE;
        timing->probe_every = timing->until_probe = every < LAST_PROBE ? every : LAST_PROBE;
    }
    __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
    return 0;
}
"""

_SIGNATURES = {
    "lif_fwd": [ctypes.c_long] * 2 + [ctypes.c_void_p] * 10 + ["r"] * 4,
    "gated_fwd": [ctypes.c_long] * 2 + [ctypes.c_void_p] * 11 + ["r"] * 4,
    "lif_bwd": [ctypes.c_long] * 2 + [ctypes.c_void_p] * 13 + ["r"] * 3 + [ctypes.c_int],
    "gated_bwd": [ctypes.c_long] * 2 + [ctypes.c_void_p] * 13 + ["r"] * 3 + [ctypes.c_int],
    "stream_frame": [ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long,
                     ctypes.c_void_p],
}
_RETURNS_STATUS = ("lif_bwd", "gated_bwd", "stream_frame")
_REAL = {torch.float32: ("float", ctypes.c_float), torch.float64: ("double", ctypes.c_double)}
_MATH = {"float": ("floorf", "expf"), "double": ("floor", "exp")}
_cache: Dict[torch.dtype, Optional[ctypes.CDLL]] = {}


def _cache_dir() -> Path:
    default = Path.home() / ".cache" / "pytorch_kaldi_snn"
    return Path(os.environ.get("PYTORCH_KALDI_SNN_CACHE", default))


def _cpu_flags() -> str:
    """CPU feature flags: the build uses -march=native, so a cached object is per CPU type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return ""


# No -ffast-math and no FMA contraction: the quantiser's floor() must see the same V as the
# reference computes with separate PyTorch operators. -fno-trapping-math only lets floor()
# vectorise; it changes no result.
# -pthread: streaming's helper threads (POSIX threads, no OpenMP runtime needed).
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno", "-fPIC", "-shared",
          "-pthread"]


def _codes() -> str:
    """``#define`` lines of the codes the source uses, from the one Python definition."""
    names = [(f"SURROGATE_{name.upper()}", SURROGATE_TABLE[name].code) for name in SURROGATES]
    names += [(f"NEURON_{name.upper()}", NEURON_TABLE[name].code) for name in NEURONS]
    names.append(("UNKNOWN_CODE", UNKNOWN_CODE))
    return "".join(f"#define {name} ({code})\n" for name, code in names)


def source() -> str:
    """The C source as compiled: the generated codes, then :data:`_SOURCE`."""
    return "/* generated from pytorch_kaldi_snn.neurons */\n" + _codes() + _SOURCE


def check_status(status: int, what: str) -> None:
    """Raise by name when a kernel refused a code (see :data:`UNKNOWN_CODE`)."""
    if status == UNKNOWN_CODE:
        raise NotImplementedByBackend(f"{what!r} is not implemented by the native C kernels "
                                      f"(they returned UNKNOWN_CODE)")


def _build(real: str) -> Path:
    """Compile the kernels for one floating type; reuse a cached build of the same source."""
    defines = [f"-DREAL={real}", f"-DFLOOR={_MATH[real][0]}", f"-DEXP={_MATH[real][1]}"]
    text = source()
    key = "\n".join([text, *_FLAGS, *defines, _cpu_flags()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = _cache_dir() / f"spiking_steps_{real}_{digest}.so"
    if target.exists():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc/gcc) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "steps.c"
        src.write_text(text)
        out = Path(tmp) / target.name
        cmd = [compiler, *_FLAGS, *defines, str(src), "-o", str(out), "-lm"]
        try:  # vectorised floor() needs more than the baseline ISA; not every compiler has it
            subprocess.run(cmd + ["-march=native"], check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError:
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        os.replace(out, target)  # atomic: concurrent first uses never see a partial file
    return target


_LAYER_TYPES: Dict[torch.dtype, type] = {}


def stream_layers(dtype: torch.dtype, count: int) -> ctypes.Array:
    """A zeroed array of ``count`` C ``stream_layer`` structs of ``dtype`` for ``stream_frame``
    (its fields in the order of the C source)."""
    if dtype not in _LAYER_TYPES:
        real = _REAL[dtype][1]
        longs, ptrs = ["neuron", "m", "n"], ["W", "bias", "w_rec", "alpha", "beta", "i", "v",
                                               "y", "y_prev", "acc"]
        fields = ([(name, ctypes.c_long) for name in longs]
                  + [(name, ctypes.c_void_p) for name in ptrs]
                  + [(name, real) for name in ("c", "delta", "gamma", "qmax")]
                  + [("active", ctypes.c_long)])
        _LAYER_TYPES[dtype] = type(f"StreamLayer_{_REAL[dtype][0]}", (ctypes.Structure,),
                                   {"_fields_": fields})
    return (_LAYER_TYPES[dtype] * count)()


class StreamTiming(ctypes.Structure):
    """A stream's C ``stream_timing``: when its frames go faster shared between threads."""

    _fields_ = [("mean_seconds", ctypes.c_double * 2), ("probe_every", ctypes.c_long),
                ("until_probe", ctypes.c_long)]


def ptr(x: Optional[torch.Tensor], t: Optional[int] = None) -> Optional[int]:
    """Address of ``x`` (NULL for None), or of its row ``t`` along the first dimension."""
    if x is None:
        return None
    return x.data_ptr() if t is None else x.data_ptr() + t * x.stride(0) * x.element_size()


def load(dtype: torch.dtype) -> Optional[ctypes.CDLL]:
    """The native kernels for ``dtype`` (float32/float64), or ``None`` if they cannot be used."""
    if dtype in _cache:
        return _cache[dtype]
    lib = None
    if dtype in _REAL:
        real, c_real = _REAL[dtype]
        try:
            lib = ctypes.CDLL(str(_build(real)))
            for name, argtypes in _SIGNATURES.items():
                fn = getattr(lib, name)
                fn.argtypes = [c_real if a == "r" else a for a in argtypes]
                fn.restype = ctypes.c_long if name in _RETURNS_STATUS else None
            log.debug("native C kernels built (%s)", real)
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            log.warning("fused spiking recurrence: native kernels unavailable (%s); "
                        "using the PyTorch-operator path", err)
            lib = None
    _cache[dtype] = lib
    return lib
