"""Small datasets in the exact DAVIS, VOC, JHMDB and VIP layouts with known ground truth, drawn from
scikit-image photos.

assets.py    textures, shapes and backgrounds cut from scikit-image's bundled photos
scenes.py    moving, occluding, resizing objects rendered into frames and images
figures.py   articulated stick figures: 15 known joints, textured body parts with VIP part ids
datasets.py  make_synthetic_davis / make_synthetic_voc: whole datasets written atomically
people.py    make_synthetic_jhmdb / make_synthetic_vip: the same for the keypoint and part benchmarks
"""

from .datasets import make_synthetic_davis, make_synthetic_voc
from .people import make_synthetic_jhmdb, make_synthetic_vip

__all__ = ["make_synthetic_davis", "make_synthetic_jhmdb", "make_synthetic_vip", "make_synthetic_voc"]
