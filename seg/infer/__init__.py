"""Inference: load a trained model (folder, Lightning checkpoint or MLflow URI), predict whole cases with
Gaussian sliding windows and mirroring TTA, and write outputs with the input's exact geometry.

    from seg.infer.model_io import load_model
    from seg.infer.predictor import Predictor

    model = load_model("models/latest")            # ModelBundle: net (eval), config, fingerprint, meta
    pred = Predictor(model, tta=True).predict(image, gates=True)   # image: preprocessed (C, *spatial)
    pred.probabilities                             # (K, *spatial) float32, softmax averaged over windows and flips
    pred.gates["level0"]                           # (1, *spatial) float32 in [0, 1], stitched like the logits
    pred = Predictor(model).predict(image, maps=True)   # every attention map the network computes
    pred.maps[MapId("self", "enc3b0", 1)]          # (1, *its own grid) float32: stitched on the map's grid
    pred.on_image_grid(MapId("spatial", "dec1"))   # (1, *spatial): one map at full size
    pred.channels[MapId("channel", "enc2")]        # (C,) channel weights, mean over windows and flips
"""
