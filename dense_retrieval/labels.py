"""Label-map conventions shared by every road.

PASCAL VOC and DAVIS mark pixels that are neither background nor a labelled object (object
boundaries, ambiguous regions) with the value 255, "void". Scoring ignores them where the protocol
says so; propagation treats them as background.
"""

VOID = 255
"""The void label of VOC and DAVIS label PNGs."""
