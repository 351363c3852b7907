r"""Transfer learning for capsule networks (paper 000, Sec. 3.3 and 3.5.1).

One module per concept; every name is importable from `keras_caps.training.transfer`:

* `init_student_from_teacher` (`keras_caps.models.weight_transfer`): initialise a (narrower)
  student from a trained teacher by copying the teacher's most important channels / capsule
  types / capsule components, consistently through the network.
* `replace_head` (heads.py): cross-dataset transfer: the same backbone with a fresh
  class-capsule head (and Length / Mask / decoder) for a new number of classes.
* `GradualUnfreezing` (unfreezing.py): layer-wise fine-tuning: train the last layers first,
  unfreeze earlier layers stage by stage, lowering the learning rate by a factor at each stage.
* `with_l2_regularization` (regularization.py): the L2 term lambda R(w) of eq. 16.
"""

from keras_caps.models.weight_transfer import init_student_from_teacher
from keras_caps.training.transfer.heads import replace_head
from keras_caps.training.transfer.regularization import REGULARIZED, with_l2_regularization
from keras_caps.training.transfer.unfreezing import (
    GradualUnfreezing,
    default_stages,
    trainable_layer_names,
)

__all__ = [
    "GradualUnfreezing",
    "REGULARIZED",
    "default_stages",
    "init_student_from_teacher",
    "replace_head",
    "trainable_layer_names",
    "with_l2_regularization",
]
