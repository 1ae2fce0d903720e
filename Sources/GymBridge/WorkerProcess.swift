import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why talking to a worker process failed: the worker's own error line, its exit, or silence
/// past the timeout. ``description`` is the cause only; the session adds the worker and env.
struct WorkerFault: Error, CustomStringConvertible {
    var description: String
}

/// One Python worker process and its control socket: text lines out, text lines back, every
/// wait bounded by a timeout. The socket is the child's stdin and stdout; its stderr is ours.
final class WorkerProcess {
    let pid: pid_t
    private let socket: Int32
    private var pending: [UInt8] = []
    /// The receive buffer, reused by every read.
    private var chunk = [UInt8](repeating: 0, count: 65536)
    private var reaped = false

    /// Starts `arguments[0]` (looked up on PATH unless it holds a `/`) with `arguments`.
    init(arguments: [String]) throws(WorkerFault) {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw WorkerFault(description: "cannot create a socket pair: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the copies: the child gets its end as fds 0 and 1 only.
        posix_spawn_file_actions_adddup2(&actions, pair[1], 0)
        posix_spawn_file_actions_adddup2(&actions, pair[1], 1)
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let status = arguments[0].contains("/")
            ? posix_spawn(&child, arguments[0], &actions, nil, argv, environ)
            : posix_spawnp(&child, arguments[0], &actions, nil, argv, environ)
        close(pair[1])
        guard status == 0 else {
            close(pair[0])
            throw WorkerFault(description: "cannot start \(arguments[0]): \(String(cString: strerror(status)))")
        }
        pid = child
        socket = pair[0]
    }

    deinit {
        terminate()
        close(socket)
    }

    /// Sends `lines`, each ending in a newline, in one write where they fit.
    func send(_ lines: [String]) throws(WorkerFault) {
        var bytes = Array(lines.joined(separator: "\n").utf8)
        bytes.append(10)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw WorkerFault(description: exitDescription(orElse: "the control socket failed: \(String(cString: strerror(errno)))"))
            }
            sent += n
        }
    }

    /// The next line the worker writes, without its newline; a worker that exits first or
    /// stays silent for `timeout` seconds is a fault (the caller then ends the worker).
    func receive(timeout: Double, waitingFor request: String) throws(WorkerFault) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else {
                throw WorkerFault(description: "did not answer '\(request)' within \(formatSeconds(timeout)) (a hang?)")
            }
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(left * 1000, 1_000_000)) + 1)
            if ready < 0 {
                if errno == EINTR { continue }
                throw WorkerFault(description: "poll failed: \(String(cString: strerror(errno)))")
            }
            if ready == 0 { continue }
            let n = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw WorkerFault(description: exitDescription(orElse: "the control socket failed: \(String(cString: strerror(errno)))"))
            }
            if n == 0 { throw WorkerFault(description: exitDescription(orElse: "closed its control socket")) }
            pending.append(contentsOf: chunk[..<n])
        }
    }

    /// How the worker ended, waiting up to a second for it to be reaped; `fallback` if it runs on.
    private func exitDescription(orElse fallback: String) -> String {
        for _ in 0..<100 {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                reaped = true
                let signal = status & 0x7f
                if signal != 0 {
                    let names: [Int32: String] = [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV",
                                                  SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGHUP: "SIGHUP"]
                    return "was killed by signal \(signal)" + (names[signal].map { " (\($0))" } ?? "")
                }
                return "exited with status \((status >> 8) & 0xff)"
            }
            if r < 0 { return fallback }
            usleep(10_000)
        }
        return fallback
    }

    /// Asks the worker to exit, then kills it if it has not within `grace` seconds, and reaps it:
    /// no zombie is left behind.
    func terminate(grace: Double = 0) {
        guard !reaped else { return }
        if grace > 0 {
            try? send(["close"])
            let deadline = Date().addingTimeInterval(grace)
            while Date() < deadline {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    reaped = true
                    return
                }
                usleep(2_000)
            }
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped = true
    }
}

/// `30 s`, `0.5 s`.
func formatSeconds(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : "\(s) s" }
