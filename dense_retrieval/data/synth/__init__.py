"""Small datasets in the exact DAVIS and VOC layouts with known ground truth, drawn from scikit-image photos.

assets.py    textures, shapes and backgrounds cut from scikit-image's bundled photos
scenes.py    moving, occluding, resizing objects rendered into frames and images
datasets.py  make_synthetic_davis / make_synthetic_voc / make_synthetic_ade20k: whole datasets written atomically
"""

from .datasets import make_synthetic_ade20k, make_synthetic_davis, make_synthetic_voc

__all__ = ["make_synthetic_ade20k", "make_synthetic_davis", "make_synthetic_voc"]
