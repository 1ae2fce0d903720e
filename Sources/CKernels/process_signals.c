// What the command line needs of the process that Swift 6 cannot write safely in Swift: line
// buffering for the C global `stdout`, and a flag set by SIGINT / SIGTERM that the training
// loop polls between iterations (a signal handler may only set a sig_atomic_t).
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "CKernels.h"

void metarl_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    if (stop_signal != 0) {  // the second one: stop now, the default way
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
    static const char message[] = "\nmetarl: stopping after this iteration, with a checkpoint (the same signal again stops at once)\n";
    ssize_t ignored = write(2, message, sizeof message - 1);
    (void)ignored;
}

void metarl_catch_stop_signals(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    stop_signal = 0;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    // A parent may have started this process with them blocked (the mask survives exec).
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &stops, NULL);
}

void metarl_release_stop_signals(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

int metarl_stop_signal(void) { return stop_signal; }
