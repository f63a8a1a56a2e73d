"""Evaluation metrics as pure numpy functions (no I/O, no printing).

DAVIS J&F (davisvideochallenge/davis2017-evaluation): :mod:`.conventions` (the settings; no numpy, no
OpenCV), :mod:`.region` (J), :mod:`.boundary` (F), :mod:`.statistics` (Mean / Recall / Decay) and
:mod:`.jf` (a whole frame, all objects at once).
Semantic segmentation mIoU (MaskContrast's TP/FP/FN convention): :mod:`.segmentation`.
"""
