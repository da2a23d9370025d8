"""Where the network looks, measured: every attention map of the network (gate, spatial, channel, self-attention,
with query points' attention and attention distance in mm), class activation maps (Grad-CAM, Grad-CAM++, HiResCAM,
plain CAM) and SEAM's equivariance and Pixel Correlation Module (Wang et al., CVPR 2020), per case and class.

    cam_targets.py     layers a CAM can target, by name (`seg layers MODEL`)
    cam.py             CAM formulas on (B, C, *spatial) activations and gradients, 2D and 3D alike
    engine.py          one case's maps: probabilities, attention maps, CAMs, head features, by (sliding) windows
    map_grid.py        attention maps from their own grids onto the input's (values interpolated, weights as mass)
    queries.py         query points (class centroids, the user's voxels) and each head's attention from them
    transforms.py      spatial transforms with inverses, and the equivariance error
    equivariance.py    T^-1(map(T x)) against map(x) for every transform
    pcm.py             the Pixel Correlation Module (local feature affinities)
    scores.py          Dice over thresholds, threshold choice, energy inside the mask, Pearson correlation
    cases.py           the analysed cases: preprocessed arrays, labels on that grid, properties to restore
    measure.py         one case: maps, PCM, equivariance, scores
    keys.py            the names of the analysis metrics (cam.<class>.<measure>, gate.<level>.<measure>, ...)
    aggregate.py       thresholds from selection cases, flat metrics over cases
    outputs.py         map files in the original geometry, PNG overlays (pictures by `seg.pictures`)
    plots.py           channel weights as bars, attention distance by depth
    report.py          the self-contained HTML file
    report_content.py  what the report says
    run.py             `seg analyze`: all of the above for a set of cases; logged by `seg.tracking.analysis`

Measurements are made on the preprocessed grid (where the network works and the labels of the cache live); maps
are written in the original image's geometry (`restore_to_original` + `write_image`).
"""
