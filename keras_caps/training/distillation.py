r"""Knowledge distillation for capsule networks (paper 000, Sec. 3.3-3.4).

A frozen teacher CapsNet guides a smaller trainable student (`Distiller`):

    L = alpha * T^2 * KL(p_t(T) || p_s(T)) + beta * L_task(student, labels)
        [+ gamma * L_caps(teacher capsules, student capsules)]
        [+ L_recon(student reconstruction)]  [+ the student's own weight regularizers]

The loss terms and the class scores they take from capsule lengths (z = log(|v| + eps)) are
`keras_caps.training.distillation_loss` (re-exported here); `fit_distiller` trains a Distiller
with the resumable loop of `keras_caps.training.loop`.

Reconstruction: when the student has a decoder its reconstruction loss is added
(`ReconstructionLoss`, recon_weight x sum of squared pixel errors, Sabour's 0.0005 by default).

Shapes: B batch, J classes, D class-capsule dimension, (H, W, C) image.
"""

from __future__ import annotations

import types

import keras
import tensorflow as tf
from keras import ops
from keras.src.losses.loss import scale_loss_for_distribution  # what compiled losses use

from keras_caps.capsule_ops import safe_length
from keras_caps.io_utils import save_model
from keras_caps.losses import ReconstructionLoss, margin_loss
from keras_caps.models.heads import has_decoder, image_input
from keras_caps.training.distillation_loss import (
    TASK_LOSSES,
    LengthCrossentropy,
    _one_hot,
    capsule_matching_loss,
    distillation_kl,
    length_crossentropy,
    length_logits,
    soft_probabilities,
)
from keras_caps.training.loop import FitTarget, fit_resumable

# ------------------------------------------------------------------------------ the Distiller


def _caps_layer(model, role):
    for name in ("class_caps", "length"):
        try:
            model.get_layer(name)
        except ValueError as err:
            raise ValueError(
                f"the {role} {model.name!r} has no {name!r} layer: the Distiller needs keras_caps "
                "models built by `capsnet` or `deep_capsnet` (layers class_caps and length)."
            ) from err
    out = model.get_layer("class_caps").output
    return out[0] if isinstance(out, (list, tuple)) else out


def _check_pair(teacher, student):
    """Raises ValueError when teacher and student disagree on classes or input shape."""
    t_caps, s_caps = _caps_layer(teacher, "teacher"), _caps_layer(student, "student")
    tj, sj = int(t_caps.shape[1]), int(s_caps.shape[1])
    if tj != sj:
        raise ValueError(
            f"teacher {teacher.name!r} has {tj} classes but student {student.name!r} has {sj}: "
            "build the student with num_classes equal to the teacher's (or replace the teacher's "
            "head first with keras_caps.training.transfer.replace_head)."
        )
    t_shape = tuple(image_input(teacher).shape[1:])
    s_shape = tuple(image_input(student).shape[1:])
    if t_shape != s_shape:
        raise ValueError(
            f"teacher input shape {t_shape} differs from student input shape {s_shape}: both "
            "must read the same images; build the student with input_shape="
            f"{t_shape}."
        )


@keras.saving.register_keras_serializable(package="keras_caps")
class Distiller(keras.Model):
    """A frozen teacher and a trainable student trained with the distillation loss.

    Data: `fit`/`evaluate` take (images (B, H, W, C), labels) with one-hot (B, J) or integer
    (B,) labels, e.g. `keras_caps.data.make_dataset(...)`. `predict`/`call` return the student's
    capsule lengths (B, J).

    Logged metrics (train and "val_"): loss (the total), kd_loss (the KL term without weights),
    task_loss (margin or cross-entropy, unweighted), capsule_loss / reconstruction_loss when
    enabled (unweighted), accuracy (student, argmax of the lengths).

    Sample weights are not supported (ignored). The student's own regularization losses
    (`student.losses`, e.g. from `with_l2_regularization`) are added to the training loss.

    Gradients reach the student only: the teacher is set `trainable = False` and runs in
    inference mode. The loss is `compute_loss` (Keras' hook; it runs the teacher and returns
    the loss per replica under tf.distribute, scaled as Keras scales compiled losses) and the
    accuracy `compute_metrics`; only the forward pass is the Distiller's own (`train_step`:
    a student with a decoder needs the labels).

    Args:
        teacher: keras_caps model (capsnet / deep_capsnet, any decoder), already trained.
        student: keras_caps model with the same number of classes J and input shape.
        temperature: T > 0 (default 3, as in the paper).
        alpha: weight of T^2 * KL (default 1; 0 with capsule_weight 0 trains the student on
            the task loss alone and does not run the teacher).
        beta: weight of the task loss (default 1).
        task_loss: "margin" or "crossentropy".
        capsule_weight: weight of the capsule-matching MSE (0: off).
        recon_weight: weight of the student's sum-of-squares reconstruction loss (students
            with a decoder only; 0 turns it off).
        score_epsilon: eps of z = log(|v| + eps).
        m_plus: margin-loss target length of the true class (Sabour: 0.9).
        m_minus: margin-loss bound on the other classes' lengths (Sabour: 0.1).
        down_weight: margin-loss weight lambda of the other classes (Sabour: 0.5).
        **kwargs: keras.Model arguments (name, ...).

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet

    def tiny(**kw):  # a CapsNet for 12 x 12 images
        return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                       primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)

    import keras
    from keras_caps.training.distillation import Distiller

    teacher = tiny()  # in practice a trained model: keras.saving.load_model(".../model.keras")
    student = capsnet(input_shape=(12, 12, 1), conv_filters=4, conv_kernel=3, primary_capsules=2,
                      primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)

    from keras_caps import data

    distiller = Distiller(teacher, student, temperature=3.0, alpha=1.0, beta=1.0)
    distiller.compile(keras.optimizers.Adam(1e-3))
    logs = distiller.fit(data.make_dataset(images, labels, 8), epochs=1, verbose=0).history
    assert {"loss", "kd_loss", "task_loss", "accuracy"} <= set(logs)
    assert distiller.predict(data.unit_images(images[:2]), verbose=0).shape == (2, 10)  # lengths
    distiller.save_student("student.keras")  # the student alone
    ```
    """

    def __init__(self, teacher, student, temperature=3.0, alpha=1.0, beta=1.0,
                 task_loss="margin", capsule_weight=0.0, recon_weight=0.0005,
                 score_epsilon=1e-6, m_plus=0.9, m_minus=0.1, down_weight=0.5, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(teacher, keras.Model) or not isinstance(student, keras.Model):
            raise ValueError(
                "teacher and student must be keras.Model instances (keras_caps capsnet / "
                f"deep_capsnet), got {type(teacher).__name__} and {type(student).__name__}."
            )
        if float(temperature) <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        for name, value in (("alpha", alpha), ("beta", beta), ("capsule_weight", capsule_weight),
                            ("recon_weight", recon_weight)):
            if float(value) < 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        if task_loss not in TASK_LOSSES:
            raise ValueError(f"task_loss must be one of {TASK_LOSSES}, got {task_loss!r}.")
        if float(score_epsilon) <= 0:
            raise ValueError(f"score_epsilon must be > 0, got {score_epsilon}.")
        _check_pair(teacher, student)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.task_loss = task_loss
        self.capsule_weight = float(capsule_weight)
        self.recon_weight = float(recon_weight)
        self.score_epsilon = float(score_epsilon)
        self.m_plus = float(m_plus)
        self.m_minus = float(m_minus)
        self.down_weight = float(down_weight)
        # alpha 0 without the capsule term: the loss is the task loss alone (training from
        # scratch, or transfer without KD), so the teacher's forward pass is skipped
        self.uses_teacher = self.alpha > 0 or self.capsule_weight > 0
        self.teacher = teacher
        # True then False: Keras skips the recursion when the flag does not change, and a
        # teacher loaded with trainable=False can have sublayers (PrimaryCapsule.conv, the
        # Decoder's Dense layers) that were created trainable inside their parent's __init__.
        self.teacher.trainable = True
        self.teacher.trainable = False
        self.student = student
        self.num_classes = int(_caps_layer(student, "student").shape[1])
        self.student_has_decoder = has_decoder(student)
        self._recon = ReconstructionLoss(self.recon_weight) if self.student_has_decoder else None
        # Views sharing the teacher's / student's layers. Kept in a plain namespace so that
        # Keras does not track (and save) the same weights a second time.
        s_caps = _caps_layer(student, "student")
        outputs = {"capsules": s_caps}
        if self.student_has_decoder:
            outputs["reconstruction"] = student.output["reconstruction"]
        self._views = types.SimpleNamespace(
            teacher=keras.Model(image_input(teacher), _caps_layer(teacher, "teacher"),
                                name="teacher_capsules"),
            student=keras.Model(student.input, outputs, name="student_capsules"),
            student_image=keras.Model(image_input(student), s_caps, name="student_classifier"),
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.kd_tracker = keras.metrics.Mean(name="kd_loss")
        self.task_tracker = keras.metrics.Mean(name="task_loss")
        self.capsule_tracker = keras.metrics.Mean(name="capsule_loss")
        self.recon_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.accuracy_metric = keras.metrics.CategoricalAccuracy(name="accuracy")
        self.built = True

    # -- Keras plumbing -----------------------------------------------------------------------

    @property
    def metrics(self):
        metrics = [self.loss_tracker, self.kd_tracker, self.task_tracker]
        if self.capsule_weight > 0:
            metrics.append(self.capsule_tracker)
        if self.student_has_decoder and self.recon_weight > 0:
            metrics.append(self.recon_tracker)
        return metrics + [self.accuracy_metric]

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Keras compile; the losses and metrics are the Distiller's own (see the class doc)."""
        if loss is not None or metrics:
            raise ValueError(
                "Distiller computes its own loss and metrics: compile it with only an optimizer "
                "and set temperature / alpha / beta / task_loss in the constructor."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        """Re-compiles a loaded Distiller (optimizer and its variables) from its saved config."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=False):
        """Student capsule lengths (B, J) for images (B, H, W, C) (or {"image": ...})."""
        images = inputs["image"] if isinstance(inputs, dict) else inputs
        return safe_length(self._views.student_image(images, training=training))

    # -- losses ---------------------------------------------------------------------------------

    def compute_losses(self, labels, teacher_caps, student_out, images=None):
        """The loss terms for one batch.

        Args:
            labels: one-hot (B, J).
            teacher_caps: teacher class capsules (B, J, Dt), or None when the loss does not
                use them (`uses_teacher` False): the KD term is then 0.
            student_out: {"capsules": (B, J, Ds)[, "reconstruction": (B, H, W, C)]}.
            images: (B, H, W, C), needed for the reconstruction term.
        Returns:
            dict of scalars: loss (weighted total, without regularizers), kd_loss, task_loss,
            capsule_loss, reconstruction_loss (unweighted terms; absent terms are 0).
        """
        s_caps = student_out["capsules"]
        s_len = safe_length(s_caps)  # (B, J)
        if teacher_caps is None:  # alpha 0 and no capsule term: the teacher is not run
            kd = ops.zeros((), dtype=s_len.dtype)
        else:
            kd = ops.mean(distillation_kl(safe_length(teacher_caps), s_len, self.temperature,
                                          self.score_epsilon))
        if self.task_loss == "margin":
            task = margin_loss(labels, s_len, self.m_plus, self.m_minus, self.down_weight)
        else:
            task = length_crossentropy(labels, s_len, self.score_epsilon)
        task = ops.mean(task)
        total = self.alpha * self.temperature**2 * kd + self.beta * task
        zero = ops.zeros((), dtype=total.dtype)
        caps = zero
        if self.capsule_weight > 0:
            caps = capsule_matching_loss(ops.stop_gradient(teacher_caps), s_caps)
            total = total + self.capsule_weight * caps
        recon = zero
        if self._recon is not None and self.recon_weight > 0:
            recon = ops.mean(self._recon.call(images, student_out["reconstruction"]))
            total = total + recon  # the weight lives in ReconstructionLoss
        return {"loss": total, "kd_loss": kd, "task_loss": task, "capsule_loss": caps,
                "reconstruction_loss": recon}

    def student_outputs(self, x, y, training=False):
        """The student's forward pass that the loss needs: `compute_loss`'s `y_pred`.

        Args:
            x: images (B, H, W, C) or {"image": images}.
            y: one-hot (B, J) or integer (B,) labels (a student with a decoder reconstructs
                from the capsule of the true class).
            training: the student's training mode.
        Returns:
            {"capsules": (B, J, Ds)[, "reconstruction": (B, H, W, C)]}.

        Example:

        ```python
        import numpy as np
        from keras_caps.data import unit_images
        from keras_caps.models import capsnet

        def tiny(**kw):  # a CapsNet for 12 x 12 images
            return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                           primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
        labels = rng.integers(0, 10, 16)  # (N,)

        import keras
        from keras_caps.training.distillation import Distiller

        teacher = tiny()  # in practice a trained model: keras.saving.load_model(".../model.keras")
        student = capsnet(input_shape=(12, 12, 1), conv_filters=4, conv_kernel=3, primary_capsules=2,
                          primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)

        distiller = Distiller(teacher, student)
        out = distiller.student_outputs(unit_images(images), labels)
        assert out["capsules"].shape == (16, 10, 4)  # (B, J, Ds)
        ```
        """
        images = x["image"] if isinstance(x, dict) else x
        labels = _one_hot(y, self.num_classes)
        student_in = {"image": images, "label": labels} if self.student_has_decoder else images
        return self._views.student(student_in, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The distillation loss of one batch, as Keras' `fit` / `evaluate` take it.

        Runs the frozen teacher on the images (inference mode, no gradient; skipped when
        `uses_teacher` is False, i.e. alpha 0 and no capsule term), combines its
        class capsules with the student's by `compute_losses`, adds the student's
        regularization losses when training, and updates the loss metrics (loss, kd_loss,
        task_loss, ...).

        Args:
            x: images (B, H, W, C) or {"image": images}.
            y: one-hot (B, J) or integer (B,) labels.
            y_pred: the student's outputs, from `student_outputs`.
            sample_weight: ignored (sample weights are not supported).
            training: whether the student's regularization losses are added (the training
                loss has them, the validation loss does not).
        Returns:
            Scalar loss per replica: under tf.distribute divided by the replicas in sync by
            Keras' own scaling (the gradients are summed across replicas), as Keras does for
            compiled losses; the metrics record the unscaled loss.

        Example:

        ```python
        import numpy as np
        from keras_caps.data import unit_images
        from keras_caps.models import capsnet

        def tiny(**kw):  # a CapsNet for 12 x 12 images
            return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                           primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
        labels = rng.integers(0, 10, 16)  # (N,)

        import keras
        from keras_caps.training.distillation import Distiller

        teacher = tiny()  # in practice a trained model: keras.saving.load_model(".../model.keras")
        student = capsnet(input_shape=(12, 12, 1), conv_filters=4, conv_kernel=3, primary_capsules=2,
                          primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)

        distiller = Distiller(teacher, student, alpha=0.5)
        x = unit_images(images)
        loss = distiller.compute_loss(x, labels, distiller.student_outputs(x, labels), training=False)
        terms = {m.name: float(m.result()) for m in distiller.metrics}
        np.testing.assert_allclose(float(loss), 0.5 * 9 * terms["kd_loss"] + terms["task_loss"],
                                   rtol=1e-5)  # alpha T^2 KL + beta task, T = 3
        ```
        """
        del sample_weight  # not supported (see the class docstring)
        images = x["image"] if isinstance(x, dict) else x
        teacher_caps = None
        if self.uses_teacher:
            teacher_caps = ops.stop_gradient(self._views.teacher(images, training=False))
        terms = self.compute_losses(_one_hot(y, self.num_classes), teacher_caps, y_pred, images)
        if training and self.student.losses:
            terms["loss"] = terms["loss"] + ops.sum(ops.stack(self.student.losses))
        self.loss_tracker.update_state(terms["loss"])
        self.kd_tracker.update_state(terms["kd_loss"])
        self.task_tracker.update_state(terms["task_loss"])
        self.capsule_tracker.update_state(terms["capsule_loss"])
        self.recon_tracker.update_state(terms["reconstruction_loss"])
        return scale_loss_for_distribution(terms["loss"])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the student's accuracy and returns every metric of `metrics`.

        Args:
            x: the batch's inputs (unused).
            y: one-hot (B, J) or integer (B,) labels.
            y_pred: the student's outputs, from `student_outputs`.
            sample_weight: ignored.
        Returns:
            {metric name: value}.
        """
        del x, sample_weight
        self.accuracy_metric.update_state(_one_hot(y, self.num_classes),
                                          safe_length(y_pred["capsules"]))
        return self.get_metrics_result()

    def _unpack(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("Distiller.fit/evaluate need labels: pass (images, labels).")
        return x, _one_hot(y, self.num_classes), sample_weight

    def train_step(self, data):
        # Keras' default train_step but for the forward pass: Keras' takes y_pred = self(x),
        # the student's lengths, while the loss needs the student's class capsules and, for a
        # student with a decoder, its reconstruction, which the decoder makes from the
        # capsule of the true class: the forward pass needs the labels (`student_outputs`).
        # The loss (with its replica scaling) and the metrics are Keras' compute_loss /
        # compute_metrics, overridden above.
        x, y, sample_weight = self._unpack(data)
        with tf.GradientTape() as tape:
            y_pred = self.student_outputs(x, y, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
            loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_weights
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        # the forward pass of train_step (it needs the labels), in inference mode
        x, y, sample_weight = self._unpack(data)
        y_pred = self.student_outputs(x, y, training=False)
        self.compute_loss(x, y, y_pred, sample_weight, training=False)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    # -- saving ---------------------------------------------------------------------------------

    def save_student(self, path):
        """Saves the student alone (a .keras file, loadable without keras_caps.training)."""
        save_model(self.student, path)
        return path

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "beta": self.beta,
            "task_loss": self.task_loss,
            "capsule_weight": self.capsule_weight,
            "recon_weight": self.recon_weight,
            "score_epsilon": self.score_epsilon,
            "m_plus": self.m_plus,
            "m_minus": self.m_minus,
            "down_weight": self.down_weight,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("teacher", "student"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects)
        return cls(**config)


# ------------------------------------------------------------------------------ fitting


class BestStudentCheckpoint(keras.callbacks.Callback):
    """Saves `model.student` to `path` whenever `monitor` improves (max).

    For a `Distiller.fit` of your own; `fit_distiller` keeps best.keras with its checkpoint
    (`ResumableCheckpoint(best_model=...)`).

    Args:
        path: the .keras file to write.
        monitor: the log key to maximise.
        best: the best value so far (a resumed run's), or None.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet

    def tiny(**kw):  # a CapsNet for 12 x 12 images
        return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                       primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)

    import keras
    from keras_caps.training.distillation import Distiller

    teacher = tiny()  # in practice a trained model: keras.saving.load_model(".../model.keras")
    student = capsnet(input_shape=(12, 12, 1), conv_filters=4, conv_kernel=3, primary_capsules=2,
                      primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)

    import os
    from keras_caps import data
    from keras_caps.training.distillation import BestStudentCheckpoint

    distiller = Distiller(teacher, student)
    distiller.compile("adam")
    ds = data.make_dataset(images, labels, 8)
    distiller.fit(ds, validation_data=ds, epochs=1, verbose=0,
                  callbacks=[BestStudentCheckpoint("best_student.keras")])
    assert os.path.exists("best_student.keras")
    ```
    """

    def __init__(self, path, monitor="val_accuracy", best=None):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.best is None or float(value) > self.best:
            self.best = float(value)
            save_model(self.model.student, self.path)


def distiller_target(distiller):
    """The `FitTarget` of a `Distiller` for `fit_resumable`.

    Args:
        distiller: what `build_distiller` returned.
    Returns:
        FitTarget: accuracy "accuracy" (the student's), best.keras and model.keras hold the
        student alone, test_kd_loss / test_task_loss and teacher_params in the metrics.
    Raises:
        ValueError: `distiller` is not a Distiller.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet

    def tiny(**kw):  # a CapsNet for 12 x 12 images
        return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                       primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)

    import keras
    from keras_caps.training.distillation import Distiller

    teacher = tiny()  # in practice a trained model: keras.saving.load_model(".../model.keras")
    student = capsnet(input_shape=(12, 12, 1), conv_filters=4, conv_kernel=3, primary_capsules=2,
                      primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)

    from keras_caps.training.distillation import distiller_target

    target = distiller_target(Distiller(teacher, student))
    assert target.accuracy == "accuracy" and target.product(Distiller(teacher, student)) is student
    ```
    """
    if not isinstance(distiller, Distiller):
        raise ValueError(f"build_distiller must return a Distiller, got {type(distiller).__name__}.")
    return FitTarget(
        accuracy="accuracy",
        num_classes=distiller.num_classes,
        product=lambda d: d.student,
        test_keys=("kd_loss", "task_loss"),
        sizes=lambda d: {"params": int(d.student.count_params()),
                         "teacher_params": int(d.teacher.count_params())},
    )


def fit_distiller(build_distiller, train_data, val_data, model_dir, epochs, batch_size=None,
                  batch_policy=None, strategy=None, augment_shift=0, seed=0, verbose=1,
                  callbacks=(), run_config=None, overwrite=False):
    """Distils epoch by epoch with `fit_resumable`, resuming from `model_dir`.

    The loop of `fit_capsnet` (the same lock, config, checkpoint, NaN-loss checks and
    multi-worker handling) with a `Distiller`. Under `model_dir`: checkpoints/ (the whole
    Distiller with its optimizer: the resume point), history.csv, logs/ (TensorBoard),
    best.keras (the best student by val_accuracy), and at the end model.keras (the student
    alone) and metrics.json.

    Args:
        build_distiller: callable returning a compiled `Distiller`; called inside the strategy
            scope, only when there is no checkpoint to resume.
        train_data: (images (N, H, W, C) uint8 or float in [0, 1], labels (N,) int), or a
            `keras_caps.data_sources.StreamedSplit` (a folder read from disk per batch).
        val_data: the validation split, the same forms.
        model_dir: run folder.
        epochs: total epochs (a resumed run trains only the missing ones).
        batch_size: fixed batch size (when `batch_policy` is None).
        batch_policy: object with `batch_size(epoch)` (0-based epoch).
        strategy: a tf.distribute strategy (None: default).
        augment_shift: random shift augmentation in pixels (0: none).
        seed: shuffling / augmentation seed (epoch e uses seed + e).
        verbose: Keras progress bar (1) or silence (0).
        callbacks: extra Keras callbacks (run before the checkpoint: what they add to the
            logs reaches history.csv).
        run_config: dict saved as config.json (a resume with a different one is an error).
        overwrite: move what `model_dir` holds to a backup folder and start fresh.
    Returns:
        metrics dict: test_accuracy, test_loss, test_kd_loss, test_task_loss,
        best_test_accuracy, epochs, train_time_s, params (student), teacher_params, history,
        model_path.
    Raises:
        ValueError: `build_distiller` did not return a Distiller; and the errors of
            `fit_resumable` (RunDirError, InputDataError, NonFiniteLossError).

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet

    def tiny(**kw):  # a CapsNet for 12 x 12 images
        return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                       primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)

    import keras
    from keras_caps.training.distillation import Distiller

    teacher = tiny()  # in practice a trained model: keras.saving.load_model(".../model.keras")
    student = capsnet(input_shape=(12, 12, 1), conv_filters=4, conv_kernel=3, primary_capsules=2,
                      primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)

    from keras_caps.training.distillation import fit_distiller

    def build():
        distiller = Distiller(teacher, student, temperature=3.0)
        distiller.compile(keras.optimizers.Adam(1e-3))
        return distiller

    metrics = fit_distiller(build, (images, labels), (images, labels), "kd", epochs=1,
                            batch_size=8, verbose=0)
    assert metrics["params"] < metrics["teacher_params"]
    student = keras.saving.load_model(metrics["model_path"])  # the student alone
    ```
    """
    return fit_resumable(build_distiller, train_data, val_data, model_dir, epochs,
                         distiller_target, batch_size=batch_size, batch_policy=batch_policy,
                         strategy=strategy, augment_shift=augment_shift, seed=seed,
                         verbose=verbose, callbacks=callbacks, run_config=run_config,
                         overwrite=overwrite)


__all__ = [
    "BestStudentCheckpoint",
    "Distiller",
    "LengthCrossentropy",
    "TASK_LOSSES",
    "capsule_matching_loss",
    "distillation_kl",
    "distiller_target",
    "fit_distiller",
    "length_crossentropy",
    "length_logits",
    "soft_probabilities",
]
