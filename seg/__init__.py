"""seg: 2D and 3D attention U-Nets for medical image segmentation, staged with DVC and tracked in MLflow."""

__version__ = "0.1.0"
