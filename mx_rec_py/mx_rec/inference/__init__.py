"""Local inference: export a sharded checkpoint to one folder, load it, predict (SPEC section 5);
or export it as a SavedModel that stock TensorFlow serves (``export_savedmodel``)."""
from mx_rec.inference.signature import set_prediction
from mx_rec.inference.export import export_local
from mx_rec.inference.model import InferenceModel, load_inference_model
from mx_rec.inference.saved_model import export_savedmodel

__all__ = ["set_prediction", "export_local", "InferenceModel", "load_inference_model", "export_savedmodel"]
