import Dispatch

/// Runs `body(0)…body(count − 1)` on up to `threads` threads and returns the results in
/// index order. With one thread (or one item) it runs them in order on the caller's
/// thread, so a result never depends on the thread count as long as each `body(i)` is
/// itself deterministic.
public func concurrentMap<T>(_ count: Int, threads: Int, _ body: (Int) -> T) -> [T] {
    if threads <= 1 || count <= 1 { return (0..<count).map(body) }
    let results = UnsafeMutableBufferPointer<T?>.allocate(capacity: count)
    results.initialize(repeating: nil)
    defer {
        results.deinitialize()
        results.deallocate()
    }
    // Items are dealt round-robin to `threads` workers; each writes only its own slots.
    let workers = Swift.min(threads, count)
    withoutActuallyEscaping(body) { body in
        nonisolated(unsafe) let body = body
        nonisolated(unsafe) let slots = results
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for i in stride(from: worker, to: count, by: workers) {
                slots[i] = body(i)
            }
        }
    }
    return results.map { $0! }
}

/// `concurrentMap` for a body that can throw: every item runs, then the first error
/// thrown (by index) is rethrown.
public func concurrentMap<T>(_ count: Int, threads: Int, _ body: (Int) throws -> T) throws -> [T] {
    try concurrentMap(count, threads: threads) { i in Result { try body(i) } }.map { try $0.get() }
}
