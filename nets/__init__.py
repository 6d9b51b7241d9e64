"""PyTorch side: models, data, training, Hessian-vector products, pruning, gRDA, the limit pipeline, CLI.

Modules: :mod:`nets.models`, :mod:`nets.data`, :mod:`nets.train`, :mod:`nets.hessian`, :mod:`nets.prune`,
:mod:`nets.grda`, :mod:`nets.limit`, :mod:`nets.cli`.
"""
