"""Emoface machine-learning core: vocabulary, audio front-end, datasets, networks, checkpoints.

Importing this package does no work; the command-line entry points live in ``ml.train_*`` and
``ml.evaluate_*``. ``service/`` imports from here, never the other way round.
"""
