#ifndef METARL_MUJOCO_SHIM_H
#define METARL_MUJOCO_SHIM_H

#include <mujoco/mujoco.h>

/// Routes MuJoCo's error and warning handlers through this shim: an error inside a guarded
/// call returns to it instead of ending the process, and warnings are only counted (in
/// mjData.warning) instead of being printed and logged to MUJOCO_LOG.TXT. Idempotent.
void metarl_mj_install_handlers(void);

/// Loads an MJCF file; NULL with the reason in `error` on failure (a MuJoCo error included).
mjModel *metarl_mj_load_xml(const char *path, char *error, int error_size);

/// Copies `control` (model->nu values) into data->ctrl, runs `frames` mj_step calls; then,
/// when `forward_after` is nonzero, mj_forward and mj_subtreeVel (rllab's `model.forward()`
/// after stepping: positions, subtree centres of mass and their velocities of the new state);
/// then, when `contact_forces` is nonzero, mj_rnePostConstraint (so cfrc_ext is current, as
/// Gymnasium computes it after every step). Returns 0, or 1 with
/// MuJoCo's error message in `error` when MuJoCo raised one (the data is then unusable
/// until reset).
int metarl_mj_step(const mjModel *model, mjData *data, const double *control, int frames,
                   int contact_forces, int forward_after, char *error, int error_size);

/// Runs mj_forward (positions, velocities and everything derived from them). Returns 0 or 1
/// as metarl_mj_step does.
int metarl_mj_forward(const mjModel *model, mjData *data, char *error, int error_size);

/// The number of times warning `kind` (mjtWarning) fired on `data` since its last reset.
int metarl_mj_warning_count(const mjData *data, int kind);

/// The reference loop the benchmark compares against: `env_steps` rounds in which every one
/// of `count` states gets its row of the control table (row r of `rows`, `count` × nu values
/// a row, cycled) and `frames` mj_step calls; nothing else. Returns seconds elapsed.
double metarl_mj_raw_step_seconds(const mjModel *model, mjData **data, int count, const float *controls,
                                  int rows, int frames, long env_steps);

#endif
