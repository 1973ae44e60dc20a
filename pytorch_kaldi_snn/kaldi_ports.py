"""The single import point for the pip Kaldi ports, in the only order that does not deadlock.

``kaldi_hmm_gmm`` must be imported before ``kaldi_decoder``, ``kaldilm`` or ``kaldifst``:
importing any of those first hangs forever at 0 % CPU (see docs/ and
/work/shared/notes/kaldi_in_pip.md). Every module imports the ports from here::

    from pytorch_kaldi_snn.kaldi_ports import kaldifst, kaldi_decoder, kaldi_hmm_gmm
"""
import kaldi_hmm_gmm  # noqa: I001  (must stay first: see the module docstring)
import kaldifst
import kaldi_decoder
import kaldilm

__all__ = ["kaldi_hmm_gmm", "kaldifst", "kaldi_decoder", "kaldilm"]
