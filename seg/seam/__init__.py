"""SEAM (Wang et al., CVPR 2020) as a training method on image-level presence labels, in one package:

    network      `SeamNet`: the U-Net's encoder, a CAM classifier and the pixel correlation module
    pcm          the pixel correlation module (affinity refinement of maps), batched, 2D and 3D
    loss         SEAM's training loss
    presence     presence labels (from masks or a labels file) and how training samples them
    sweep        the Dice of the pseudo masks over background scores, and the per-class choice
    calibration  after training: per class the scales, shift, PCM or not and background score, on validation cases
    objective    `SeamSupervision`: the training objective (`train.supervision: seam`)
    images       the CAM / PCM images a validation logs to MLflow
    pseudo       pseudo masks of the training cases, written as a cache (`seg pseudo`)

Importing the package registers `SeamNet` as the network of `train.supervision: seam` (`seg.models.build`), so that
configs and model folders of SEAM models build it.
"""

from seg.models.build import register_network
from seg.seam.network import SeamNet

register_network("seam", lambda config: SeamNet(config.model, config.seam))

__all__ = ["SeamNet"]
