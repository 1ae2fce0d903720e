#ifndef METARL_MPI_SHIM_H
#define METARL_MPI_SHIM_H

// Open MPI, loaded at run time. Nothing of MPI is needed to build MetaRL: this shim opens
// libmpi.so.40 with dlopen only when a run is started under mpirun, and reaches the handful
// of MPI calls a data-parallel run needs through function pointers. MPI_COMM_WORLD and
// MPI_BYTE are macros in mpi.h (addresses of Open MPI's predefined objects), which Swift
// cannot import; here they are those objects' addresses, looked up by name.

#include <stdint.h>

/// Loads `library` (NULL: "libmpi.so.40") and resolves every symbol used. Returns 0, or -1
/// with a message in `error` naming what was missing.
int metarl_mpi_load(const char *library, char *error, int errorSize);

/// MPI_Init_thread with MPI_THREAD_FUNNELED (only the main thread calls MPI). Returns MPI's
/// error code (0 = success).
int metarl_mpi_init(void);

/// This process's rank and the number of processes in MPI_COMM_WORLD.
int metarl_mpi_rank(void);
int metarl_mpi_size(void);

/// Every rank's `sendCount` bytes gathered into `receive` in rank order (`counts[r]` bytes of
/// rank r at `offsets[r]`), as a non-blocking MPI_Iallgatherv polled until it completes or
/// `timeoutSeconds` pass. Returns 0, MPI's error code, or -1 on timeout.
int metarl_mpi_allgatherv(const void *send, int sendCount, void *receive, const int *counts, const int *offsets,
                          double timeoutSeconds);

/// Every rank sends `sendCounts[r]` bytes at `sendOffsets[r]` of `send` to rank r and receives
/// `receiveCounts[r]` bytes from rank r into `receive` at `receiveOffsets[r]`, as a non-blocking
/// MPI_Ialltoallv polled like `metarl_mpi_allgatherv`. Returns 0, MPI's error code, or -1 on timeout.
int metarl_mpi_alltoallv(const void *send, const int *sendCounts, const int *sendOffsets, void *receive,
                         const int *receiveCounts, const int *receiveOffsets, double timeoutSeconds);

/// Ends every rank of the job with `code` (MPI_Abort on MPI_COMM_WORLD).
void metarl_mpi_abort(int code);

/// MPI_Finalize.
int metarl_mpi_finalize(void);

/// MPI's text for an error code.
void metarl_mpi_error_string(int code, char *text, int textSize);

#endif
