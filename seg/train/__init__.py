"""Training: a LightningModule that receives the network, a DataModule over the preprocessed cache, Dice+CE with
deep supervision, sliding-window validation, MLflow tracking with gate-map images. Uses models and data."""
