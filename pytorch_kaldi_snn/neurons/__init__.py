"""Spiking neurons, each variant defined once: registry (:mod:`.variants`), options
(:mod:`.options`), step dynamics (:mod:`.dynamics`), surrogate gradients (:mod:`.surrogate`) and
output levels (:mod:`.levels`), none of which imports torch (the cfg reader reads them); the
multi-bit quantiser of Eq. 22 (:mod:`.quantizer`), the membrane-max EMA (:mod:`.ema`) and the
authors' quantiser (:mod:`.symmetric`) in PyTorch. Import each from its module: this package
imports nothing, so that reading a cfg does not load PyTorch.
"""
