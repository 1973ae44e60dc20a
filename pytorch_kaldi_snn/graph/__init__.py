"""Lang dir, phone bigram LM, G and HCLG for phone recognition (Kaldi's prepare_lang/mkgraph).

Modules:

* :mod:`~pytorch_kaldi_snn.graph.lang`: phones.txt/words.txt/topo/L/phones/ (words = phones);
* :mod:`~pytorch_kaldi_snn.graph.lm`: the smoothed phone bigram ARPA and G.fst (kaldilm);
* :mod:`~pytorch_kaldi_snn.graph.hclg`: HCLG with kaldifst + kaldi-hmm-gmm, and the graph dir;
* :mod:`~pytorch_kaldi_snn.graph.prepare_lang` and :mod:`~pytorch_kaldi_snn.graph.mkgraph`:
  the recipe steps (CLIs).
"""
