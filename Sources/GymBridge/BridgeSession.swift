import Envs
import Foundation
import TensorCore

/// A task of a Python env: its pickle, as `get_task` / `sample_tasks` returned it. Stored in
/// checkpoints (as base64 text), so a resumed run sets the very same tasks.
public struct PythonTask: Codable, Sendable, Hashable, CustomStringConvertible {
    /// The pickled task, base64-encoded.
    public var pickle: String

    /// The task whose pickle (base64) is `pickle`.
    public init(pickle: String) { self.pickle = pickle }

    /// Reads the base64 string.
    public init(from decoder: any Decoder) throws { pickle = try decoder.singleValueContainer().decode(String.self) }

    /// Writes the base64 string.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(pickle)
    }

    /// A short form for logs: the first characters of the pickle.
    public var description: String { "PythonTask(\(pickle.prefix(16))…)" }
}

/// A failure starting the bridge (a missing module or method, an interpreter that does not
/// run): one line naming the env, the worker and the cause.
public struct BridgeError: Error, CustomStringConvertible {
    /// The line `metarl` prints.
    public var description: String
    /// An error with this line.
    public init(_ description: String) { self.description = description }
}

/// One worker as the session sees it: its process, its shared arrays, which of its slots
/// hold a built env and which task each was last set to, and the order of its replies.
/// Guarded by `lock`.
///
/// Every line sent gets one reply line, in order: a line's *ticket* is its place in what was
/// sent, and whoever waits for a ticket reads (and keeps for their owners) the replies before
/// it, so a step can be sent and collected later while other lines go to the same worker.
final class WorkerChannel {
    let index: Int
    let process: WorkerProcess
    var arrays: SharedArrays?
    var built: Set<Int> = []
    var applied: [Int: PythonTask] = [:]
    let lock = NSLock()
    /// Lines sent and replies read so far; replies read for tickets not yet asked for.
    private var posted = 0, answered = 0
    private var kept: [Int: String] = [:]

    init(index: Int, process: WorkerProcess) {
        self.index = index
        self.process = process
    }

    /// Sends `lines` (the caller holds `lock`); the ticket of the first one's reply.
    func post(_ lines: [String]) throws(WorkerFault) -> Int {
        try process.send(lines)
        defer { posted += lines.count }
        return posted
    }

    /// The reply to `ticket` (the caller holds `lock`), reading and keeping the replies before it.
    func reply(to ticket: Int, timeout: Double, waitingFor label: String) throws(WorkerFault) -> String {
        while true {
            if let line = kept.removeValue(forKey: ticket) { return line }
            let line = try process.receive(timeout: timeout, waitingFor: label)
            answered += 1
            if answered - 1 == ticket { return line }
            kept[answered - 1] = line
        }
    }
}

/// A step sent to the workers whose replies are not yet read (``BridgeSession/startStep(_:)``).
final class BridgeStep: StartedStep {
    /// Per worker: its reply's ticket, the arrays it writes, and each copy's slot and output row.
    let parts: [(worker: Int, ticket: Int, arrays: SharedArrays, copies: [(slot: Int, row: Int)])]

    init(parts: [(worker: Int, ticket: Int, arrays: SharedArrays, copies: [(slot: Int, row: Int)])]) { self.parts = parts }
}

/// A slot on a worker held by one copy of the env; its release returns the slot (and the
/// Python env built in it, kept for reuse) to the session.
final class CopyLease: @unchecked Sendable {
    let session: BridgeSession
    let worker: Int
    let slot: Int

    init(session: BridgeSession, worker: Int, slot: Int) {
        self.session = session
        self.worker = worker
        self.slot = slot
    }

    deinit { session.release(worker: worker, slot: slot) }
}

/// The worker processes of one Python task family and the exchanges with them. Copies of
/// the env lease slots on the workers (spread evenly); a batch of copies is stepped with one
/// message per worker, all workers working at once. A fault of any worker ends every worker
/// and is kept: every later exchange throws it.
final class BridgeSession: @unchecked Sendable {
    let name: String
    let observationSpace: Space
    let actionSpace: Space
    let horizon: Int
    let defaultTask: PythonTask
    let observationSize: Int
    let actionSize: Int
    /// Seconds a reply may take before the worker counts as hung.
    let timeout: Double
    /// Whether observations are one-hot rows of a discrete space (a 1 at the index).
    private let channels: [WorkerChannel]
    /// Guards `free`, `live`, `highWater` and `failure`.
    private let state = NSLock()
    private var free: [[Int]]
    private var live: [Int]
    private var highWater: [Int]
    private var failure: EnvError?
    private var mappings = 0
    /// Tells this session's shared-memory files from those of other sessions of the process
    /// (not a seeded draw: it never reaches the results).
    private let fileToken = String(UInt32.random(in: 0...UInt32.max), radix: 36)

    /// Starts `options.workers` workers for `target` (`MODULE:ATTR` split in two) with keyword
    /// arguments `kwargs` (texts Python reads as literals) and checks the env they build.
    init(name: String, module: String, attribute: String, kwargs: [String: String], options: GymBridgeOptions) throws {
        self.name = name
        timeout = options.timeout
        let python = try options.interpreter()
        let script = try GymBridgeOptions.workerScript()
        var started: [WorkerChannel] = []
        for i in 0..<options.workers {
            do {
                started.append(WorkerChannel(index: i, process: try WorkerProcess(arguments: [python, "-u", script])))
            } catch {
                throw BridgeError("\(name) worker \(i): \(error)")
            }
        }
        channels = started
        let config: [String: Any] = ["name": name, "target": ["module": module, "attr": attribute], "kwargs": kwargs]
        let line = "init " + String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self)
        var replies: [String] = []
        for channel in started {
            do { try channel.process.send([line]) } catch { throw BridgeError("\(name) worker \(channel.index): \(error)") }
        }
        for channel in started {
            let reply: String
            do { reply = try channel.process.receive(timeout: options.startupTimeout, waitingFor: "init") } catch {
                throw BridgeError("\(name) worker \(channel.index): \(error)")
            }
            guard reply.hasPrefix("ok ") else {
                throw BridgeError("\(name) worker \(channel.index): \(reply.hasPrefix("error ") ? String(reply.dropFirst(6)) : "answered '\(reply)' to init")")
            }
            replies.append(String(reply.dropFirst(3)))
        }
        guard Set(replies.map { $0.replacingOccurrences(of: #""task": "[^"]*""#, with: "", options: .regularExpression) }).count == 1 else {
            throw BridgeError("\(name): the workers built envs with different spaces or horizons")
        }
        let description = try Self.decode(replies[0], name: name)
        observationSpace = description.observation
        actionSpace = description.action
        horizon = description.horizon
        defaultTask = description.task
        observationSize = observationSpace.flatSize
        actionSize = actionSpace.flatSize
        free = Array(repeating: [], count: started.count)
        live = Array(repeating: 0, count: started.count)
        highWater = Array(repeating: 0, count: started.count)
    }

    deinit {
        for channel in channels { channel.process.terminate(grace: 1) }
    }

    /// The process ids of the workers, in worker order.
    var workerPIDs: [pid_t] { channels.map(\.process.pid) }

    /// The spaces, horizon and first task a worker reported.
    private static func decode(_ json: String, name: String) throws -> (observation: Space, action: Space, horizon: Int, task: PythonTask) {
        struct SpaceReport: Decodable {
            var discrete: Int?
            var low: [Float]?, high: [Float]?, shape: [Int]?
            func space(_ role: String, name: String) throws -> Space {
                if let n = discrete, n >= 1 { return .discrete(n) }
                guard let low, let high, let shape, low.count == high.count, low.count == shape.reduce(1, *), !low.isEmpty else {
                    throw BridgeError("\(name): the \(role) space is neither Discrete(n ≥ 1) nor a non-empty Box")
                }
                return .box(low: low, high: high, shape: shape)
            }
        }
        struct Report: Decodable {
            var observation: SpaceReport, action: SpaceReport, horizon: Int, task: String
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(json.utf8))
        var observation = try report.observation.space("observation", name: name)
        // A discrete observation travels one-hot, as a box of 0/1 rows.
        if case .discrete(let n) = observation { observation = .box(low: 0, high: 1, shape: [n]) }
        guard report.horizon >= 1 else { throw BridgeError("\(name): max_episode_steps \(report.horizon) is not positive") }
        return (observation, try report.action.space("action", name: name), report.horizon, PythonTask(pickle: report.task))
    }

    // MARK: Slots

    /// A free slot on the worker with the fewest live copies (the lowest index among equals).
    func lease() -> CopyLease {
        state.lock()
        let worker = live.indices.min { (live[$0], $0) < (live[$1], $1) }!
        let slot: Int
        if free[worker].isEmpty {
            slot = highWater[worker]
            highWater[worker] += 1
        } else {
            slot = free[worker].removeFirst()
        }
        live[worker] += 1
        state.unlock()
        return CopyLease(session: self, worker: worker, slot: slot)
    }

    func release(worker: Int, slot: Int) {
        state.lock()
        free[worker].insert(slot, at: free[worker].firstIndex { $0 > slot } ?? free[worker].count)
        live[worker] -= 1
        state.unlock()
    }

    /// The kept failure, if any worker has failed.
    var recordedFailure: EnvError? {
        state.lock()
        defer { state.unlock() }
        return failure
    }

    /// Keeps the first failure and ends every worker (their reaping is done by whoever holds
    /// each one's lock, or at the latest when the session ends).
    private func fail(_ reason: String) -> EnvError {
        state.lock()
        if failure == nil { failure = .failed(environment: name, reason: reason) }
        let kept = failure!
        state.unlock()
        for channel in channels { kill(channel.process.pid, SIGKILL) }
        for channel in channels where channel.lock.try() {
            channel.process.terminate()
            channel.lock.unlock()
        }
        return kept
    }

    // MARK: Exchanges

    /// One round with several workers at once: under each worker's lock (taken in index
    /// order), `prepare` writes the shared arrays and returns the lines to send; once every
    /// worker has its lines, each one's replies are read and `collect` reads the arrays.
    private func exchange(
        _ workers: [Int], label: String, replyTimeout: Double? = nil,
        prepare: (WorkerChannel, SharedArrays) -> [String],
        collect: (WorkerChannel, SharedArrays, [String]) -> String?
    ) throws(EnvError) {
        let involved = workers.sorted()
        for w in involved { channels[w].lock.lock() }
        defer { for w in involved.reversed() { channels[w].lock.unlock() } }
        // Ends every worker, reaps the ones this exchange holds, and gives the kept failure.
        func fail(_ reason: String) -> EnvError {
            let kept = self.fail(reason)
            for w in involved { channels[w].process.terminate() }
            return kept
        }
        if let failure = recordedFailure { throw failure }
        var sent: [(WorkerChannel, SharedArrays, Int, Int)] = []
        for w in involved {
            let channel = channels[w]
            do {
                let arrays = try mapped(channel)
                let lines = prepare(channel, arrays)
                sent.append((channel, arrays, try channel.post(lines), lines.count))
            } catch {
                throw fail("worker \(w), \(label): \(error)")
            }
        }
        for (channel, arrays, first, count) in sent {
            var payloads: [String] = []
            for ticket in first..<(first + count) {
                let reply: String
                do { reply = try channel.reply(to: ticket, timeout: replyTimeout ?? timeout, waitingFor: label) } catch {
                    throw fail("worker \(channel.index), \(label): \(error)")
                }
                if reply.hasPrefix("error ") { throw fail("worker \(channel.index), \(label): \(reply.dropFirst(6))") }
                guard reply == "ok" || reply.hasPrefix("ok ") else { throw fail("worker \(channel.index), \(label): answered '\(reply.prefix(80))'") }
                payloads.append(reply == "ok" ? "" : String(reply.dropFirst(3)))
            }
            if let problem = collect(channel, arrays, payloads) { throw fail("worker \(channel.index), \(label): \(problem)") }
        }
    }

    /// The channel's shared arrays, remapped larger first if a slot leased since lies beyond them.
    private func mapped(_ channel: WorkerChannel) throws(WorkerFault) -> SharedArrays {
        state.lock()
        let needed = highWater[channel.index]
        mappings += 1
        let tag = "\(fileToken)-\(channel.index)-\(mappings)"
        state.unlock()
        if let arrays = channel.arrays, arrays.capacity >= needed { return arrays }
        let capacity = Swift.max(16, needed, 2 * (channel.arrays?.capacity ?? 0))
        let arrays = try SharedArrays(capacity: capacity, observationSize: observationSize, actionSize: actionSize, tag: tag)
        let ticket = try channel.post(["map \(arrays.path) \(capacity)"])
        let reply = try channel.reply(to: ticket, timeout: timeout, waitingFor: "map")
        guard reply == "ok" else { throw WorkerFault(description: "could not map the shared arrays: \(reply.dropFirst(6))") }
        arrays.unlink()
        channel.arrays = arrays
        return arrays
    }

    /// `n` tasks from `sample_tasks(n)` with every generator of the worker seeded by `seed`.
    func sampleTasks(_ n: Int, seed: UInt64) throws(EnvError) -> [PythonTask] {
        var tasks: [PythonTask] = []
        try exchange([0], label: "sample_tasks(\(n))", prepare: { _, _ in ["sample \(n) \(seed)"] }) { _, _, payloads in
            tasks = payloads[0].split(separator: " ").map { PythonTask(pickle: String($0)) }
            return tasks.count == n ? nil : "sample_tasks(\(n)) gave \(tasks.count) tasks"
        }
        return tasks
    }

    /// One task for each seed, as `sampleTasks(1, seed:)` gives it for that seed, asked in one
    /// message to the same worker.
    func sampleTasks(seeds: [UInt64]) throws(EnvError) -> [PythonTask] {
        var tasks: [PythonTask] = []
        let line = "sample_each " + seeds.map(String.init).joined(separator: ",")
        try exchange([0], label: "sample_tasks(1) for \(seeds.count) seeds", prepare: { _, _ in [line] }) { _, _, payloads in
            tasks = payloads[0].split(separator: " ").map { PythonTask(pickle: String($0)) }
            return tasks.count == seeds.count ? nil : "sample_tasks(1) for \(seeds.count) seeds gave \(tasks.count) tasks"
        }
        return tasks
    }

    /// One copy to reset: its slot, its task, the seed of its episode, and its row in the output.
    struct ResetItem {
        var lease: CopyLease
        var task: PythonTask
        var seed: UInt64
        var row: Int
    }

    /// Resets the items' copies (building their envs and setting their tasks first where
    /// needed) and writes each observation to row `row` of `observations`.
    func reset(_ items: [ResetItem], observations: UnsafeMutablePointer<Float>) throws(EnvError) {
        let byWorker = Dictionary(grouping: items, by: \.lease.worker)
        let n = observationSize
        try exchange(Array(byWorker.keys), label: "reset", prepare: { channel, arrays in
            let mine = byWorker[channel.index]!
            var lines: [String] = []
            let unbuilt = mine.map(\.lease.slot).filter { !channel.built.contains($0) }
            if !unbuilt.isEmpty {
                lines.append("make " + unbuilt.map(String.init).joined(separator: ","))
                channel.built.formUnion(unbuilt)
            }
            for item in mine where channel.applied[item.lease.slot] != item.task {
                lines.append("task \(item.lease.slot) \(item.task.pickle)")
                channel.applied[item.lease.slot] = item.task
            }
            for item in mine { arrays.seeds[item.lease.slot] = item.seed }
            lines.append("reset " + mine.map { String($0.lease.slot) }.joined(separator: ","))
            return lines
        }) { channel, arrays, _ in
            for item in byWorker[channel.index]! {
                let from = arrays.observations + item.lease.slot * n
                for j in 0..<n where !from[j].isFinite { return "reset gave observation element \(j) = \(from[j]) (copy in slot \(item.lease.slot))" }
                (observations + item.row * n).update(from: from, count: n)
            }
            return nil
        }
    }

    /// One copy to step: its slot, where its action row is, and its row in the outputs.
    struct StepItem {
        var lease: CopyLease
        var action: UnsafePointer<Float>
        var row: Int
    }

    /// Writes the items' actions and sends each worker its step, without waiting for the
    /// replies (``finishStep(_:observations:rewards:terminated:truncated:successes:)`` reads them):
    /// the workers step while the caller goes on.
    func startStep(_ items: [StepItem]) throws(EnvError) -> BridgeStep {
        let m = actionSize
        var byWorker = [[Int]](repeating: [], count: channels.count)  // indices into `items`
        for (k, item) in items.enumerated() { byWorker[item.lease.worker].append(k) }
        var parts: [(worker: Int, ticket: Int, arrays: SharedArrays, copies: [(slot: Int, row: Int)])] = []
        for (w, mine) in byWorker.enumerated() where !mine.isEmpty {
            let channel = channels[w]
            channel.lock.lock()
            defer { channel.lock.unlock() }
            if let failure = recordedFailure { throw failure }
            do {
                let arrays = try mapped(channel)
                let copies = mine.map { (slot: items[$0].lease.slot, row: items[$0].row) }
                for k in mine { (arrays.actions + items[k].lease.slot * m).update(from: items[k].action, count: m) }
                let ticket = try channel.post([Self.stepLine(copies)])
                parts.append((w, ticket, arrays, copies))
            } catch {
                let kept = fail("worker \(w), step: \(error)")
                channel.process.terminate()
                throw kept
            }
        }
        return BridgeStep(parts: parts)
    }

    /// `step S1,S2,…`: the step message for these slots, written digit by digit (it is sent
    /// every step, so it is built without a string per slot).
    static func stepLine(_ copies: [(slot: Int, row: Int)]) -> String {
        var bytes = Array("step ".utf8)
        bytes.reserveCapacity(bytes.count + 8 * copies.count)
        for (k, copy) in copies.enumerated() {
            if k > 0 { bytes.append(UInt8(ascii: ",")) }
            let start = bytes.count
            var value = copy.slot
            repeat {
                bytes.append(UInt8(ascii: "0") + UInt8(value % 10))
                value /= 10
            } while value > 0
            bytes[start...].reverse()
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads the replies of a started step and writes each copy's observation, reward, the
    /// two flags and (when `successes` is given) the success report to its row.
    func finishStep(_ step: BridgeStep, observations: UnsafeMutablePointer<Float>, rewards: UnsafeMutablePointer<Float>,
                    terminated: UnsafeMutablePointer<Bool>, truncated: UnsafeMutablePointer<Bool>,
                    successes: UnsafeMutablePointer<Float>?) throws(EnvError) {
        let n = observationSize
        for part in step.parts {
            let channel = channels[part.worker]
            channel.lock.lock()
            defer { channel.lock.unlock() }
            // Ends every worker, reaps this one, and gives the kept failure.
            func fail(_ reason: String) -> EnvError {
                let kept = self.fail("worker \(part.worker), step: \(reason)")
                channel.process.terminate()
                return kept
            }
            if let failure = recordedFailure { throw failure }
            let reply: String
            do { reply = try channel.reply(to: part.ticket, timeout: timeout, waitingFor: "step") } catch { throw fail("\(error)") }
            if reply.hasPrefix("error ") { throw fail(String(reply.dropFirst(6))) }
            guard reply == "ok" else { throw fail("answered '\(reply.prefix(80))'") }
            let arrays = part.arrays
            for (s, row) in part.copies {
                let from = arrays.observations + s * n
                for j in 0..<n where !from[j].isFinite { throw fail("step gave observation element \(j) = \(from[j]) (copy in slot \(s))") }
                guard arrays.rewards[s].isFinite else { throw fail("step gave reward \(arrays.rewards[s]) (copy in slot \(s))") }
                (observations + row * n).update(from: from, count: n)
                rewards[row] = arrays.rewards[s]
                terminated[row] = arrays.flags[2 * s] != 0
                truncated[row] = arrays.flags[2 * s + 1] != 0
                successes?[row] = arrays.success[s]
            }
        }
    }

    /// Steps the items' copies and waits for them (a start, then its finish).
    func step(_ items: [StepItem], observations: UnsafeMutablePointer<Float>, rewards: UnsafeMutablePointer<Float>,
              terminated: UnsafeMutablePointer<Bool>, truncated: UnsafeMutablePointer<Bool>,
              successes: UnsafeMutablePointer<Float>?) throws(EnvError) {
        try finishStep(try startStep(items), observations: observations, rewards: rewards, terminated: terminated,
                       truncated: truncated, successes: successes)
    }

    /// Each worker's steps/s stepping the leased copies it holds in a plain Python loop for
    /// `seconds`, all workers at once (the reference of `metarl bench envs --bridge`), in worker order.
    func plainLoopRates(_ leases: [CopyLease], seconds: Double) throws(EnvError) -> [Double] {
        let byWorker = Dictionary(grouping: leases, by: \.worker)
        var rates: [Double] = []
        try exchange(byWorker.keys.sorted(), label: "plain loop", replyTimeout: seconds + timeout, prepare: { channel, _ in
            ["plain " + byWorker[channel.index]!.map { String($0.slot) }.joined(separator: ",") + " \(seconds)"]
        }) { _, _, payloads in
            guard let rate = Double(payloads[0]) else { return "answered '\(payloads[0].prefix(80))' to a plain loop" }
            rates.append(rate)
            return nil
        }
        return rates
    }
}
