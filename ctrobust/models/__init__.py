"""Models in, as ``nn.Module`` s taking images in [0, 1] with normalisation inside."""

from ctrobust.models.normalize import Normalized
from ctrobust.models.registry import LoadedModel, load_model, resolve_model_dataset
from ctrobust.models.smallcnn import SmallCNN

__all__ = ["LoadedModel", "Normalized", "SmallCNN", "load_model", "resolve_model_dataset"]
