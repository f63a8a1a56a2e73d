"""Pictures shared by the CLI and the notebooks: overlays, galleries, strips, charts, feature PCA.

All functions return ``uint8 [H, W, 3]`` RGB arrays (or matplotlib figures for charts); writing them
to disk is the caller's job (``dense_retrieval.data.images.write_image``).
"""
