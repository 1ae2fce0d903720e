#include "mpi_shim.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <time.h>

// Open MPI's handles are pointers; the shim never looks inside them.
typedef void *mpi_handle;
#define METARL_MPI_THREAD_FUNNELED 1
#define METARL_MPI_MAX_ERROR_STRING 256

static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_comm_rank)(mpi_handle, int *);
static int (*p_comm_size)(mpi_handle, int *);
static int (*p_iallgatherv)(const void *, int, mpi_handle, void *, const int *, const int *, mpi_handle, mpi_handle, mpi_handle *);
static int (*p_ialltoallv)(const void *, const int *, const int *, mpi_handle, void *, const int *, const int *, mpi_handle,
                           mpi_handle, mpi_handle *);
static int (*p_test)(mpi_handle *, int *, void *);
static int (*p_abort)(mpi_handle, int);
static int (*p_finalize)(void);
static int (*p_error_string)(int, char *, int *);
static mpi_handle comm_world;
static mpi_handle byte_type;

int metarl_mpi_load(const char *library, char *error, int errorSize) {
    const char *name = library ? library : "libmpi.so.40";
    // RTLD_GLOBAL: Open MPI's own plugins resolve libmpi's symbols through the global scope.
    void *handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!handle) {
        snprintf(error, errorSize, "cannot load %s (install Debian's openmpi-bin / libopenmpi3): %s", name, dlerror());
        return -1;
    }
#define RESOLVE(target, symbol)                                                                  \
    do {                                                                                         \
        *(void **)(&target) = dlsym(handle, symbol);                                             \
        if (!target) {                                                                           \
            snprintf(error, errorSize, "%s has no symbol %s (Open MPI 4 expected)", name, symbol); \
            return -1;                                                                           \
        }                                                                                        \
    } while (0)
    RESOLVE(p_init_thread, "MPI_Init_thread");
    RESOLVE(p_comm_rank, "MPI_Comm_rank");
    RESOLVE(p_comm_size, "MPI_Comm_size");
    RESOLVE(p_iallgatherv, "MPI_Iallgatherv");
    RESOLVE(p_ialltoallv, "MPI_Ialltoallv");
    RESOLVE(p_test, "MPI_Test");
    RESOLVE(p_abort, "MPI_Abort");
    RESOLVE(p_finalize, "MPI_Finalize");
    RESOLVE(p_error_string, "MPI_Error_string");
    RESOLVE(comm_world, "ompi_mpi_comm_world");
    RESOLVE(byte_type, "ompi_mpi_byte");
#undef RESOLVE
    return 0;
}

int metarl_mpi_init(void) {
    int provided = 0;
    return p_init_thread(NULL, NULL, METARL_MPI_THREAD_FUNNELED, &provided);
}

int metarl_mpi_rank(void) {
    int rank = -1;
    p_comm_rank(comm_world, &rank);
    return rank;
}

int metarl_mpi_size(void) {
    int size = -1;
    p_comm_size(comm_world, &size);
    return size;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// Waits for a non-blocking collective. Open MPI moves its fragments forward only inside
// MPI_Test, so poll without sleeping for the first 20 ms (yielding the core, so that
// oversubscribed ranks still get it), then sleep 50 µs between polls: a long wait for a slower
// rank costs no CPU, and a large exchange between ranks that are ready is not slowed by sleeps.
static int wait_for(mpi_handle request, double timeoutSeconds) {
    double started = now_seconds(), deadline = started + timeoutSeconds;
    for (;;) {
        int done = 0;
        int code = p_test(&request, &done, NULL);
        if (code != 0) return code;
        if (done) return 0;
        double now = now_seconds();
        if (now > deadline) return -1;
        if (now - started < 0.02) {
            sched_yield();
        } else {
            struct timespec pause = {0, 50000};
            nanosleep(&pause, NULL);
        }
    }
}

int metarl_mpi_allgatherv(const void *send, int sendCount, void *receive, const int *counts, const int *offsets,
                          double timeoutSeconds) {
    mpi_handle request = NULL;
    int code = p_iallgatherv(send, sendCount, byte_type, receive, counts, offsets, byte_type, comm_world, &request);
    if (code != 0) return code;
    return wait_for(request, timeoutSeconds);
}

int metarl_mpi_alltoallv(const void *send, const int *sendCounts, const int *sendOffsets, void *receive,
                         const int *receiveCounts, const int *receiveOffsets, double timeoutSeconds) {
    mpi_handle request = NULL;
    int code = p_ialltoallv(send, sendCounts, sendOffsets, byte_type, receive, receiveCounts, receiveOffsets, byte_type,
                            comm_world, &request);
    if (code != 0) return code;
    return wait_for(request, timeoutSeconds);
}

void metarl_mpi_abort(int code) { p_abort(comm_world, code); }

int metarl_mpi_finalize(void) { return p_finalize(); }

void metarl_mpi_error_string(int code, char *text, int textSize) {
    char buffer[METARL_MPI_MAX_ERROR_STRING];
    int length = 0;
    if (p_error_string && p_error_string(code, buffer, &length) == 0) {
        snprintf(text, textSize, "%.*s", length, buffer);
    } else {
        snprintf(text, textSize, "MPI error %d", code);
    }
}
