"""Structure variants of the microcontroller CapsNet, shared by the benchmarks (no flags).

    from benchmarks.mcu_variants import VARIANTS
    from keras_caps.models import mcu_capsnet
    model = mcu_capsnet("S", **VARIANTS["8-16-32 C=6 D=6 grid3"])  # 19,396 params
"""

#: Structure variants the S size was chosen from: mcu_capsnet("S", **overrides). The primary
#: grid (3 x 3 after a stride-2 primary conv on the 7 x 7 map, 5 x 5 with stride 1 or after a
#: stride-1 last block) sets N and with it the routing tensors that dominate the arena.
VARIANTS = {
    "16-32-32 grid5": dict(backbone_filters=(16, 32, 32), primary_strides=1),
    "16-32-64 grid5": dict(primary_strides=1),
    "16-32-32-64 grid5": dict(backbone_filters=(16, 32, 32, 64),
                              backbone_strides=(1, 2, 1, 2), primary_strides=1),
    "16-32-32 grid6 (last block stride 1)": dict(backbone_filters=(16, 32, 32),
                                                 backbone_strides=(1, 2, 1)),
    "16-32-32 grid3": dict(backbone_filters=(16, 32, 32)),
    "16-32-64 grid3 (= S)": dict(),
    "16-32-48-64 grid3": dict(backbone_filters=(16, 32, 48, 64),
                              backbone_strides=(1, 2, 1, 2)),
    "16-32-64-64 grid3 C=16": dict(backbone_filters=(16, 32, 64, 64),
                                    backbone_strides=(1, 2, 1, 2), num_capsules=16),
    # About 10 % of the M size's 202,880 parameters: the issue-13 "student <= 10 % of the
    # teacher" target with M as the teacher.
    "8-16-32 C=6 D=6 grid3": dict(backbone_filters=(8, 16, 32), num_capsules=6, capsule_dim=6),
}
