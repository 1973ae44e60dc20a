"""Word transcripts into phones: normalisation (:mod:`~pytorch_kaldi_snn.words.normalise`), the
pronunciation lexicons (:mod:`~pytorch_kaldi_snn.words.lexicon`: CMUdict, a Kaldi
``lexicon.txt``, eSpeak NG for words they lack) and a data dir's transcripts ready to align
(:mod:`~pytorch_kaldi_snn.words.transcripts`)."""
