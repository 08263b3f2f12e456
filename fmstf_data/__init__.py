"""fmstf-data: HDR10/SDR video pairs -> exact, aligned PQ triplets in WebDataset shards -> PyTorch training.

Subpackages by concern (see docs/architecture.md): ``manifest``, ``sources``, ``video``, ``align``, ``extract``,
``store``, ``synth``, ``color`` and ``loader`` (the only one that imports torch); ``errors`` holds the exceptions.
"""
