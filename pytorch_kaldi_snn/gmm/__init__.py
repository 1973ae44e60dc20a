"""Monophone HMM-GMM training and alignment with kaldi-hmm-gmm (Kaldi's train_mono/align_si).

Modules:

* :mod:`~pytorch_kaldi_snn.gmm.topology`: Kaldi's 3-state monophone topology, tree and
  TransitionModel;
* :mod:`~pytorch_kaldi_snn.gmm.train`: ``train_mono`` from the synthesizer's alignment, and
  the forced ``Aligner``;
* :mod:`~pytorch_kaldi_snn.gmm.model_io`: the model as a Kaldi text ``final.mdl``, and its
  TransitionModel rebuilt for graph building;
* :mod:`~pytorch_kaldi_snn.gmm.labels`: alignment dirs and PyTorch-Kaldi's ``lab_cd`` /
  ``lab_mono`` frame labels (``read_lab_folder``);
* :mod:`~pytorch_kaldi_snn.gmm.agreement`: agreement with the synthesizer (CLI);
* :mod:`~pytorch_kaldi_snn.gmm.train_mono`: the recipe step (CLI).
"""
