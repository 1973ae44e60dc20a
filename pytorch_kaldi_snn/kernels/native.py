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

# What the C source implements: ``stream_step`` every neuron below, ``lif_*`` the traditional
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

/* acc[0:w] += sum over non-zero x[r] of x[r] * W[r, 0:w]: only the rows of active inputs. */
static void add_active_rows(long rows, long w, const real *R x, const real *R W, real *R acc) {
    for (long r = 0; r < rows; ++r) {
        real xr = x[r];
        if (xr == 0) continue;
        const real *R row = W + r * w;
        for (long j = 0; j < w; ++j) acc[j] += xr * row[j];
    }
}

/* One frame of one layer of ``neuron``, batch 1, event-driven (streaming inference). x (m) is
   the input, W (m, w) the projection with eval batch norm folded in, bias (w); w = n
   (traditional) or 2n (v1, v2). w_rec (n, 2n) for v2, beta (n) for the traditional layer,
   otherwise unused. State i, v, y (n) is updated in place; acc (w) is scratch. Returns the
   number of non-zero outputs, or UNKNOWN_CODE for a neuron it does not implement. */
long stream_step(int neuron, long m, long n, const real *R x, const real *R W,
                 const real *R bias, const real *R w_rec, const real *R alpha,
                 const real *R beta, real *R i, real *R v, real *R y, real *R acc,
                 real c, real delta, real gamma, real qmax) {
    if (neuron != NEURON_TRADITIONAL && neuron != NEURON_V1 && neuron != NEURON_V2)
        return UNKNOWN_CODE;
    int traditional = neuron == NEURON_TRADITIONAL;
    long w = traditional ? n : 2 * n, active = 0;
    for (long j = 0; j < w; ++j) acc[j] = bias[j];
    add_active_rows(m, w, x, W, acc);
    if (neuron == NEURON_V2) add_active_rows(n, w, y, w_rec, acc);
    for (long j = 0; j < n; ++j) {
        if (traditional) {
            i[j] = beta[j] * i[j] + acc[j];
        } else {
            real f = 1 / (1 + EXP(-acc[j]));
            real cand = acc[n + j] > 0 ? acc[n + j] : 0;
            i[j] = f * i[j] + (1 - f) * cand;
        }
        v[j] = alpha[j] * v[j] + i[j] - c * y[j];
        y[j] = quantise(v[j], delta, gamma, qmax);
        active += y[j] != 0;
    }
    return active;
}
"""

_SIGNATURES = {
    "lif_fwd": [ctypes.c_long] * 2 + [ctypes.c_void_p] * 10 + ["r"] * 4,
    "gated_fwd": [ctypes.c_long] * 2 + [ctypes.c_void_p] * 11 + ["r"] * 4,
    "lif_bwd": [ctypes.c_long] * 2 + [ctypes.c_void_p] * 13 + ["r"] * 3 + [ctypes.c_int],
    "gated_bwd": [ctypes.c_long] * 2 + [ctypes.c_void_p] * 13 + ["r"] * 3 + [ctypes.c_int],
    "stream_step": [ctypes.c_int] + [ctypes.c_long] * 2 + [ctypes.c_void_p] * 10 + ["r"] * 4,
}
_RETURNS_STATUS = ("lif_bwd", "gated_bwd", "stream_step")
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
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno", "-fPIC", "-shared"]


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
