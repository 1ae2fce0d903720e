#include "mujoco_shim.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

// Where a MuJoCo error raised inside a guarded call returns to, per thread: the handler
// jumps back into C code of this file only, never across Swift frames.
static _Thread_local jmp_buf *guard_point = NULL;
static _Thread_local char guard_message[512];

static void on_error(const char *message) {
    snprintf(guard_message, sizeof guard_message, "%s", message);
    if (guard_point) longjmp(*guard_point, 1);
    // An error outside a guarded call (none is expected): MuJoCo's own behaviour.
    fprintf(stderr, "MuJoCo error: %s\n", message);
    abort();
}

static void on_warning(const char *message) { (void)message; }

void metarl_mj_install_handlers(void) {
    mju_user_error = on_error;
    mju_user_warning = on_warning;
}

static void copy_message(char *error, int error_size) {
    if (error && error_size > 0) snprintf(error, (size_t)error_size, "%s", guard_message);
}

// Runs body(context) with MuJoCo's errors returning here: 0 when it finished, 1 with MuJoCo's
// message in `error` when MuJoCo raised an error inside it.
static int guarded(void (*body)(void *), void *context, char *error, int error_size) {
    jmp_buf point;
    jmp_buf *outer = guard_point;
    if (setjmp(point)) {
        guard_point = outer;
        copy_message(error, error_size);
        return 1;
    }
    guard_point = &point;
    body(context);
    guard_point = outer;
    return 0;
}

struct load_call { const char *path; char *error; int error_size; mjModel *model; };
static void load_body(void *c) {
    struct load_call *call = c;
    call->model = mj_loadXML(call->path, NULL, call->error, call->error_size);
}

mjModel *metarl_mj_load_xml(const char *path, char *error, int error_size) {
    // Every simulation starts from a loaded model, so the handlers are in place before any step.
    metarl_mj_install_handlers();
    if (error && error_size > 0) error[0] = 0;
    struct load_call call = {path, error, error_size, NULL};
    return guarded(load_body, &call, error, error_size) ? NULL : call.model;
}

struct step_call { const mjModel *model; mjData *data; const double *control; int frames; int contact_forces; int forward_after; };
static void step_body(void *c) {
    struct step_call *call = c;
    memcpy(call->data->ctrl, call->control, sizeof(double) * (size_t)call->model->nu);
    for (int i = 0; i < call->frames; i++) mj_step(call->model, call->data);
    if (call->forward_after) {
        mj_forward(call->model, call->data);
        mj_subtreeVel(call->model, call->data);
    }
    if (call->contact_forces) mj_rnePostConstraint(call->model, call->data);
}

int metarl_mj_step(const mjModel *model, mjData *data, const double *control, int frames,
                   int contact_forces, int forward_after, char *error, int error_size) {
    struct step_call call = {model, data, control, frames, contact_forces, forward_after};
    return guarded(step_body, &call, error, error_size);
}

struct forward_call { const mjModel *model; mjData *data; };
static void forward_body(void *c) {
    struct forward_call *call = c;
    mj_forward(call->model, call->data);
}

int metarl_mj_forward(const mjModel *model, mjData *data, char *error, int error_size) {
    struct forward_call call = {model, data};
    return guarded(forward_body, &call, error, error_size);
}

int metarl_mj_warning_count(const mjData *data, int kind) {
    if (kind < 0 || kind >= mjNWARNING) return 0;
    return data->warning[kind].number;
}

double metarl_mj_raw_step_seconds(const mjModel *model, mjData **data, int count, const float *controls,
                                  int rows, int frames, long env_steps) {
    struct timespec start, end;
    const int nu = model->nu;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long s = 0; s < env_steps; s++) {
        const float *row = controls + (size_t)(s % rows) * (size_t)count * (size_t)nu;
        for (int i = 0; i < count; i++) {
            for (int j = 0; j < nu; j++) data[i]->ctrl[j] = row[i * nu + j];
            for (int f = 0; f < frames; f++) mj_step(model, data[i]);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    return (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec);
}
