"""Weights as data: the registry of known files, safe and strict checkpoint loading, verified downloads.

registry.py     WeightsEntry per known file (URL, hash, architecture, transform, source); where files live
checkpoints.py  torch.load(weights_only=True), checkpoint layouts (MoCo, torchvision, DINO, wrappers), strict fit
download.py     resumable downloads verified against the published hash before they take their final name
"""
