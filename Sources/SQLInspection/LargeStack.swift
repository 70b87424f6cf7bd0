import Foundation

/// Runs work on a thread of its own with a large stack, and waits for it.
///
/// libpg_query and the walks of its tree recurse once per level of an expression, and a client chooses
/// how deep that is: `1+1+…` is one level per two bytes. A thread's usual 8 MiB stack holds a few
/// thousand levels; this one holds what the longest accepted text can nest. Its memory is reserved, and
/// only the pages a parse touches are used. At most `concurrency` such threads run at once.
enum LargeStack {
    /// Enough for libpg_query (about 270 bytes a level) and the tree's walks over the deepest text
    /// that `Inspector.longestText` lets through.
    static let stackBytes = 1 << 30
    static let concurrency = 2
    private static let slots = DispatchSemaphore(value: concurrency)

    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        slots.wait()
        defer { slots.signal() }
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        let thread = Thread {
            box.value = body()
            done.signal()
        }
        thread.stackSize = stackBytes
        thread.start()
        done.wait()
        return box.value!
    }

    private final class ResultBox<T>: @unchecked Sendable {
        // Written by the worker before it signals, read by the caller after it waits.
        var value: T?
    }
}
