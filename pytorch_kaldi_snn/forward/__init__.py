"""Forward the test set: scaled log-likelihoods (log-posteriors minus log-priors) into an ark."""
from pytorch_kaldi_snn.forward.posteriors import ForwardResult, forward_test

__all__ = ["ForwardResult", "forward_test"]
