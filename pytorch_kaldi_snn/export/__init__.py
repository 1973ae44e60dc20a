"""Deployment of a trained model: ONNX for streaming (:mod:`.onnx`), NIR (:mod:`.nir`)."""
