"""Spiking recurrent networks with improved inherent recurrence dynamics for speech recognition.

Ponghiran & Roy, "Spiking Neural Networks with Improved Inherent Recurrence Dynamics for
Sequential Learning", AAAI 2022. Equation numbers in docstrings refer to that paper.
"""

__version__ = "0.1.0"
