r"""Weight transfer between keras_caps models: `init_student_from_teacher` (paper 000, Sec. 3.3).

Initialises a (narrower) student from a trained teacher by copying the teacher's most important
channels / capsule types / capsule components, consistently through the network. It is also
the weight copy of channel pruning (`keras_caps.pruning.prune_model`), so it lives with the
models, below training and pruning, which both use it (re-exported as
`keras_caps.training.transfer.init_student_from_teacher`).

Shapes: B batch, (H, W) grid, C channels, T capsule types, D capsule dims, J classes,
N = H * W * T input capsules of the class capsules (n = (h * W + w) * T + t).

Index maps
----------
`init_student_from_teacher` walks the student's layers in order and keeps, for every tensor, the
teacher indices its student entries came from:
    channel tensors (B, H, W, C) / (B, F): an int array (C_student,) of teacher channels;
    capsule grids (B, H, W, T, D):          types (T_s,) and components (T_s, D_s) per type;
    class capsules (B, J, D):               components (D_s,) (J must be equal).
A layer whose input map is unknown (its producer was skipped, or a different kind) is skipped
too: its weights would see unrelated inputs. Skipped layers keep their fresh initialisation.

Importance
----------
For a narrower student layer the teacher's outputs with the largest importance are kept (in
their original order). Default ("l1"): the L1 norm of each output's weights, e.g. a Conv2D
filter sum |W[:, :, :, c]|, a primary capsule type the sum over its D filters, a class-capsule
output component sum |W[n, j, i, d]| over n, j, i. `importance` may also be a dict
{teacher layer name: scores} (e.g. CHIP channel-independence scores): for Conv2D / Dense a
(C_out,) array; for PrimaryCapsule (T * D,) per channel (types scored by their channel sums,
components by the channel scores) or (T,) per type; for ConvCapsule (T,) or (T * D,); for
DenseCapsule (D_out,). Layers absent from the dict use the L1 default.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_caps.layers import ConvCapsule, Decoder, DenseCapsule, Mask, PrimaryCapsule

# ------------------------------------------------------------------------------ index maps


class _Caps:
    """Capsule-grid index map: teacher types (T_s,) and components (T_s, D_s)."""

    def __init__(self, types, comps):
        self.types = np.asarray(types, dtype=np.int64)
        self.comps = np.asarray(comps, dtype=np.int64)


class _ClassCaps:
    """Class-capsule index map: teacher output components (D_s,), classes identical."""

    def __init__(self, comps, teacher_dim):
        self.comps = np.asarray(comps, dtype=np.int64)
        self.teacher_dim = int(teacher_dim)


class _Skip(Exception):
    """A layer that cannot be mapped; the message is the reason in the report."""


def _top(scores, k):
    """Indices of the k largest scores (stable on ties), in ascending order."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.sort(np.argsort(-scores, kind="stable")[:k])


def _first(x):
    return x[0] if isinstance(x, (list, tuple)) else x


def _scores(importance, name, default, sizes, what):
    """Scores for teacher layer `name`: the user's if given (checked), else `default`."""
    if not isinstance(importance, dict) or name not in importance:
        return default
    scores = np.asarray(importance[name], dtype=np.float64).reshape(-1)
    if scores.shape[0] not in sizes:
        raise ValueError(
            f"importance[{name!r}] has {scores.shape[0]} scores but the teacher layer has "
            f"{' or '.join(str(s) for s in sizes)} {what}; give one score per output channel "
            "(or per capsule type)."
        )
    return scores


# ------------------------------------------------------------------------------ layer handlers


def _conv_like(s_layer, t_layer, s_kernel, t_kernel, in_map, importance, name):
    """Shared by Conv2D / Dense: kernel (..., C_in, C_out). Returns (kernel, keep)."""
    if s_kernel.shape[:-2] != t_kernel.shape[:-2]:
        raise _Skip(f"kernel size {s_kernel.shape[:-2]} differs from the teacher's "
                    f"{t_kernel.shape[:-2]}")
    if in_map is None or not isinstance(in_map, np.ndarray) or len(in_map) != s_kernel.shape[-2]:
        raise _Skip("its input channels do not map onto the teacher's")
    cout_s, cout_t = s_kernel.shape[-1], t_kernel.shape[-1]
    if cout_s > cout_t:
        raise _Skip(f"student has more outputs ({cout_s}) than the teacher ({cout_t})")
    axes = tuple(range(t_kernel.ndim - 1))
    scores = _scores(importance, name, np.abs(t_kernel).sum(axis=axes), (cout_t,), "outputs")
    keep = _top(scores, cout_s)
    kernel = np.take(np.take(t_kernel, in_map, axis=-2), keep, axis=-1)
    return kernel, keep


# Every handler returns (output index map, report info, assignments): the assignments are
# [(layer, weights)] that the caller sets unless the layer is to stay freshly initialised.


def _transfer_conv(s_layer, t_layer, in_map, importance):
    s_w, t_w = s_layer.get_weights(), t_layer.get_weights()
    kernel, keep = _conv_like(s_layer, t_layer, s_w[0], t_w[0], in_map, importance, t_layer.name)
    new = [kernel]
    if len(s_w) > 1:
        if len(t_w) < 2:
            raise _Skip("student has a bias but the teacher has none")
        new.append(t_w[1][keep])
    return keep, {"kept_channels": keep.tolist()}, [(s_layer, new)]


def _transfer_bn(s_layer, t_layer, in_map, importance):
    if not isinstance(in_map, np.ndarray) or len(in_map) != s_layer.get_weights()[0].shape[0]:
        raise _Skip("its input channels do not map onto the teacher's")
    weights = [w[in_map] for w in t_layer.get_weights()]
    return in_map, {"kept_channels": in_map.tolist()}, [(s_layer, weights)]


def _transfer_primary(s_layer, t_layer, in_map, importance):
    s_w, t_w = s_layer.conv.get_weights(), t_layer.conv.get_weights()
    if s_w[0].shape[:2] != t_w[0].shape[:2]:
        raise _Skip(f"kernel size {s_w[0].shape[:2]} differs from the teacher's {t_w[0].shape[:2]}")
    if not isinstance(in_map, np.ndarray) or len(in_map) != s_w[0].shape[2]:
        raise _Skip("its input channels do not map onto the teacher's")
    ts, ds = s_layer.num_capsules, s_layer.capsule_dim
    tt, dt = t_layer.num_capsules, t_layer.capsule_dim
    if ts > tt or ds > dt:
        raise _Skip(f"student capsules {ts} x {ds}D exceed the teacher's {tt} x {dt}D")
    channel_l1 = np.abs(t_w[0]).sum(axis=(0, 1, 2))  # (T_t * D_t,)
    scores = _scores(importance, t_layer.name, channel_l1, (tt * dt, tt), "channels / types")
    if scores.shape[0] == tt:
        type_scores, channel_scores = scores, channel_l1
    else:
        type_scores, channel_scores = scores.reshape(tt, dt).sum(axis=1), scores
    types = _top(type_scores, ts)  # (T_s,)
    comps = np.stack([_top(channel_scores[t * dt:(t + 1) * dt], ds) for t in types])  # (T_s, D_s)
    channels = (types[:, None] * dt + comps).reshape(-1)  # student channel i * D_s + d
    kernel = t_w[0][:, :, in_map][..., channels]
    info = {"kept_types": types.tolist(), "kept_components": comps.tolist()}
    return (_Caps(types, comps), channels), info, [(s_layer.conv, [kernel, t_w[1][channels]])]


def _select_rows(kernel, types, comps):
    """kernel (R, T_t, J, Din_t, Dout) -> (R, T_s, J, Din_s, Dout): types, per-type comps."""
    return np.stack([kernel[:, t][:, :, c, :] for t, c in zip(types, comps)], axis=1)


def _transfer_dense_caps(s_layer, t_layer, in_map, importance):
    if s_layer.num_capsules != t_layer.num_capsules:
        raise _Skip(f"{s_layer.num_capsules} output capsules but the teacher has "
                    f"{t_layer.num_capsules} (a different task: use replace_head)")
    if s_layer.weight_sharing != t_layer.weight_sharing:
        raise _Skip("weight sharing differs between student and teacher")
    s_in, t_in = _first(s_layer.input).shape, _first(t_layer.input).shape
    if len(s_in) == 5:
        if not isinstance(in_map, _Caps) or len(in_map.types) != s_in[3]:
            raise _Skip("its input capsules do not map onto the teacher's")
        if tuple(s_in[1:3]) != tuple(t_in[1:3]):
            raise _Skip(f"input grid {tuple(s_in[1:3])} differs from the teacher's "
                        f"{tuple(t_in[1:3])}")
    elif tuple(s_in) != tuple(t_in) or in_map is None:
        raise _Skip("its (B, N, D) input does not map onto the teacher's")
    (tk,) = t_layer.get_weights()
    (sk,) = s_layer.get_weights()
    j, dout_s, dout_t = s_layer.num_capsules, s_layer.capsule_dim, t_layer.capsule_dim
    if dout_s > dout_t:
        raise _Skip(f"student capsule dim {dout_s} exceeds the teacher's {dout_t}")
    out_scores = _scores(importance, t_layer.name, np.abs(tk).sum(axis=(0, 1, 2)), (dout_t,),
                         "output components")
    out = _top(out_scores, dout_s)
    if len(s_in) == 5:
        tt, din_t = int(t_in[3]), int(t_in[4])
        if t_layer.weight_sharing:
            grid = tk.reshape(1, tt, j, din_t, dout_t)
        else:
            grid = tk.reshape(-1, tt, j, din_t, dout_t)  # (P, T_t, J, Din_t, Dout_t)
        kernel = _select_rows(grid, in_map.types, in_map.comps)[..., out]
        kernel = kernel.reshape(sk.shape)
    else:
        kernel = tk[..., out]
    info = {"kept_output_components": out.tolist()}
    return _ClassCaps(out, dout_t), info, [(s_layer, [kernel])]


def _transfer_conv_caps(s_layer, t_layer, in_map, importance):
    if s_layer.kernel_size != t_layer.kernel_size:
        raise _Skip(f"kernel size {s_layer.kernel_size} differs from the teacher's "
                    f"{t_layer.kernel_size}")
    if not isinstance(in_map, _Caps) or len(in_map.types) != s_layer.input_types:
        raise _Skip("its input capsules do not map onto the teacher's")
    cs, ds, ct, dt = (s_layer.num_capsules, s_layer.capsule_dim, t_layer.num_capsules,
                      t_layer.capsule_dim)
    if cs > ct or ds > dt:
        raise _Skip(f"student capsules {cs} x {ds}D exceed the teacher's {ct} x {dt}D")
    (tk,) = t_layer.get_weights()  # (k*k*C_in_t, C_out_t, Din_t, Dout_t)
    kk = s_layer.kernel_size**2
    channel_l1 = np.abs(tk).sum(axis=(0, 2)).reshape(-1)  # (C_out_t * Dout_t,)
    scores = _scores(importance, t_layer.name, channel_l1, (ct * dt, ct), "channels / types")
    if scores.shape[0] == ct:
        type_scores, channel_scores = scores, channel_l1
    else:
        type_scores, channel_scores = scores.reshape(ct, dt).sum(axis=1), scores
    types = _top(type_scores, cs)
    comps = np.stack([_top(channel_scores[t * dt:(t + 1) * dt], ds) for t in types])
    grid = tk.reshape(kk, t_layer.input_types, ct, t_layer.input_dim, dt)
    rows = _select_rows(grid, in_map.types, in_map.comps)
    # rows: (kk, C_in_s, C_out_t, Din_s, Dout_t) -> output types and per-type components
    kernel = np.stack([rows[:, :, t][..., c] for t, c in zip(types, comps)], axis=2)
    info = {"kept_types": types.tolist(), "kept_components": comps.tolist()}
    return _Caps(types, comps), info, [(s_layer, [kernel.reshape(s_layer.kernel.shape)])]


def _transfer_decoder(s_layer, t_layer, in_map, importance):
    if s_layer.image_shape != t_layer.image_shape:
        raise _Skip(f"image shape {s_layer.image_shape} differs from the teacher's "
                    f"{t_layer.image_shape}")
    if len(s_layer.hidden) != len(t_layer.hidden):
        raise _Skip("the decoders have different numbers of hidden layers")
    wider = [(s, t) for s, t in zip(s_layer.hidden_units, t_layer.hidden_units) if s > t]
    if wider:
        raise _Skip(f"student decoder widths {s_layer.hidden_units} exceed the teacher's "
                    f"{t_layer.hidden_units}")
    current, kept, assignments = in_map, [], []
    for s_dense, t_dense in zip(s_layer.hidden + [s_layer.pixels],
                                t_layer.hidden + [t_layer.pixels]):
        current, _, assigned = _transfer_conv(s_dense, t_dense, current, {})
        kept.append(current.tolist())
        assignments += assigned
    return None, {"kept_units": kept[:-1]}, assignments


def _mask_map(s_layer, t_layer, in_map):
    if not isinstance(in_map, _ClassCaps) or s_layer.mode != t_layer.mode:
        return None
    if s_layer.mode == "reduced":
        return in_map.comps
    j = int(_first(s_layer.input).shape[1])
    return (np.arange(j)[:, None] * in_map.teacher_dim + in_map.comps[None, :]).reshape(-1)


_HANDLERS = (
    (PrimaryCapsule, _transfer_primary),
    (DenseCapsule, _transfer_dense_caps),
    (ConvCapsule, _transfer_conv_caps),
    (Decoder, _transfer_decoder),
    (keras.layers.Conv2D, _transfer_conv),
    (keras.layers.Dense, _transfer_conv),
    (keras.layers.BatchNormalization, _transfer_bn),
)


def _sources(layer):
    """Names of the layers whose outputs `layer` reads (its inbound layers)."""
    names = []
    for tensor in keras.tree.flatten(layer.input):
        history = getattr(tensor, "_keras_history", None)
        names.append(getattr(getattr(history, "operation", None), "name", None))
    return names


def init_student_from_teacher(teacher, student, importance="l1", fresh=()):
    """Copies the teacher's most important weights into the student, in place.

    Layers are matched by name. Equal shapes: copied as they are. A narrower student layer
    gets the teacher's most important outputs (see the module doc), and every later layer
    reads the matching inputs: conv1 output channels -> primary conv input channels; primary
    capsule types (groups of D channels) and components -> class-capsule kernel rows
    (non-shared: row (h * W + w) * T_s + t of the student is row (h * W + w) * T_t +
    types[t] of the teacher, at every position) and their Din entries; class-capsule output
    components -> the decoder's first Dense rows. What cannot be mapped (a different kernel
    size, a wider student, a different grid or class count, an unmapped input, a layer that
    reads another layer than the teacher's of its name, as the primary capsules of a student
    with fewer backbone blocks) keeps its fresh initialisation and is reported.

    This is also the weight copy of channel pruning (`keras_caps.pruning.prune_model`): there
    the student is the pruned architecture and `importance` marks the kept channels with 1.

    Args:
        teacher: a trained keras_caps model (capsnet / deep_capsnet).
        student: a keras_caps model of the same family (fewer channels / types / dims).
        importance: "l1" or {teacher layer name: scores} (see the module doc).
        fresh: names of student layers that keep their fresh initialisation although they
            could be mapped (e.g. a new ClassCaps to be re-routed). Their kept indices are
            still worked out, so the layers after them transfer as if they had been copied.
    Returns:
        report dict: "layers" {name: {"action": "copied" | "sliced" | "fresh" | "skipped",
        "reason", kept indices}}, "copied" / "sliced" / "fresh" (names), "skipped"
        {name: reason}, "params_transferred" (student parameters set from the teacher),
        "student_params".
    """
    if importance != "l1" and not isinstance(importance, dict):
        raise ValueError(f"importance must be 'l1' or a dict {{layer name: scores}}, got "
                         f"{importance!r}.")
    if isinstance(importance, dict):
        missing = [n for n in importance if n not in {layer.name for layer in teacher.layers}]
        if missing:
            raise ValueError(f"importance names layers {missing} that the teacher lacks; "
                             f"teacher layers: {[layer.name for layer in teacher.layers]}.")
    fresh = set(fresh)
    unknown = sorted(fresh - {layer.name for layer in student.layers})
    if unknown:
        raise ValueError(f"fresh names layers {unknown} that the student lacks; student "
                         f"layers: {[layer.name for layer in student.layers]}.")
    maps = {}
    t_inputs = {t.name: t for t in keras.tree.flatten(teacher.input)}
    for s_in in keras.tree.flatten(student.input):
        t_in = t_inputs.get(s_in.name)
        if t_in is not None and tuple(t_in.shape) == tuple(s_in.shape):
            maps[id(s_in)] = np.arange(int(s_in.shape[-1]))
    layers, report = {}, {"copied": [], "sliced": [], "fresh": [], "skipped": {}}
    transferred = 0
    for s_layer in student.layers:
        if isinstance(s_layer, keras.layers.InputLayer):
            continue
        inputs = keras.tree.flatten(s_layer.input)
        in_map = maps.get(id(inputs[0])) if inputs else None
        outputs = keras.tree.flatten(s_layer.output)
        try:
            t_layer = teacher.get_layer(s_layer.name)
        except ValueError:
            t_layer = None
        if not s_layer.weights:
            out = None
            if isinstance(s_layer, Mask) and isinstance(t_layer, Mask):
                out = _mask_map(s_layer, t_layer, in_map)
            elif isinstance(in_map, np.ndarray) and outputs and inputs and (
                    tuple(outputs[0].shape[-1:]) == tuple(inputs[0].shape[-1:])):
                out = in_map  # ReLU, Dropout, ...: channels pass through
            elif isinstance(in_map, (_Caps, _ClassCaps)) and tuple(outputs[0].shape) == tuple(
                    inputs[0].shape):
                out = in_map
            maps[id(outputs[0])] = out
            continue
        handler = next((h for cls, h in _HANDLERS if isinstance(s_layer, cls)), None)
        try:
            if t_layer is None:
                raise _Skip(f"the teacher has no layer named {s_layer.name!r}")
            if type(t_layer) is not type(s_layer):
                raise _Skip(f"the teacher's {s_layer.name!r} is a {type(t_layer).__name__}, "
                            f"not a {type(s_layer).__name__}")
            if handler is None:
                raise _Skip(f"no transfer rule for {type(s_layer).__name__} layers")
            reads, teacher_reads = _sources(s_layer), _sources(t_layer)
            if reads != teacher_reads:  # e.g. a student with fewer backbone blocks
                raise _Skip(f"it reads {reads} where the teacher's reads {teacher_reads}: its "
                            "inputs do not correspond")
            same = [w.shape for w in s_layer.weights] == [w.shape for w in t_layer.weights]
            out, info, assignments = handler(s_layer, t_layer, in_map, importance)
        except _Skip as why:
            layers[s_layer.name] = {"action": "skipped", "reason": str(why)}
            report["skipped"][s_layer.name] = str(why)
            for o in outputs:
                maps[id(o)] = None
            continue
        if s_layer.name in fresh:
            action = "fresh"
        else:
            action = "copied" if same else "sliced"
            for target, weights in assignments:
                target.set_weights(weights)
            transferred += int(s_layer.count_params())
        layers[s_layer.name] = {"action": action, "reason": None, **info}
        report[action].append(s_layer.name)
        if isinstance(out, tuple):
            for o, m in zip(outputs, out):
                maps[id(o)] = m
        else:
            maps[id(outputs[0])] = out
    report.update(layers=layers, params_transferred=transferred,
                  student_params=int(student.count_params()))
    return report


__all__ = ["init_student_from_teacher"]
