import Foundation
import GatehouseCore
import Glibc

/// The audit journal: two files beside the store. Every record handed over without waiting for the log's
/// commit is written here first, one line per record, before the statement it describes goes on.
///
/// The files are mapped shared into memory and their space reserved up front, so an append is a copy
/// into the page cache: no system call, and no chance of a full disk mid-line. A line in the page cache
/// outlives a crash or kill of the gateway (not a power loss, which the log's own fsync'd commits, a few
/// milliseconds later, cover).
///
/// Lines go to the active file. Once it is half full and the other file is clean, the other becomes the
/// active one; the writer cleans a file once the log holds every line in it. A file that fills while the
/// log is not committing refuses further lines, and the proxy then refuses the statements: nothing runs
/// unrecorded.
///
/// Not thread-safe: the store calls it under the lock that orders hand-overs, so journal order is the
/// order of the chain, except `clean(_:)`, which the writer calls outside it on a file no one writes to.
final class AuditJournal: @unchecked Sendable {
    private struct File {
        let path: String
        let descriptor: Int32
        var base: UnsafeMutableRawPointer?
        /// Bytes of lines written since the file was last cleaned.
        var used = 0
        /// The number of the last line written to this file, 0 when it has none.
        var last: Int64 = 0
        /// Whether the file holds no lines and may become the active one.
        var clean = false
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private var files: [File]
    private var active = 0
    /// The number of the last line written.
    private(set) var lastNumber: Int64 = 0
    /// Every line up to this number is committed to the log.
    private var committed: Int64 = 0
    /// The file the writer is cleaning, if any.
    private var cleaning: Int?
    private let capacity: Int
    private var closed = false
    /// The line being written, kept for its storage.
    private var line: [UInt8] = []

    /// Opens (creating) `<path>.journal-0` and `-1`, and takes the store's lock: two gateways must not
    /// share a store. Nothing is written until `reset(after:)`.
    init(beside path: String, capacity: Int = 32 << 20) throws {
        self.capacity = capacity
        var opened: [File] = []
        for index in 0..<2 {
            let file = "\(path).journal-\(index)"
            let descriptor = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                let reason = String(cString: strerror(errno))
                for file in opened { Glibc.close(file.descriptor) }
                throw Failure(description: "cannot open the audit journal \(file): \(reason)")
            }
            if index == 0, flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
                Glibc.close(descriptor)
                throw Failure(description: "another gateway process is using the state store at \(path)")
            }
            opened.append(File(path: file, descriptor: descriptor))
        }
        files = opened
    }

    deinit {
        close()
    }

    /// Unmaps and closes both files, giving up the store's lock; later appends fail. `empty`: the log
    /// holds every line, so the files are cut to nothing (the next start reads nothing).
    func close(empty: Bool = false) {
        guard !closed else { return }
        closed = true
        if empty { for file in files { _ = ftruncate(file.descriptor, 0) } }
        for file in files {
            if let base = file.base { munmap(base, capacity) }
            Glibc.close(file.descriptor)
        }
    }

    /// Every line both files hold, in number order, and how many lines could not be read.
    func contents() throws -> (entries: [AuditJournalEntry], unreadable: Int) {
        var entries: [AuditJournalEntry] = []
        var unreadable = 0
        for file in files {
            guard let data = FileManager.default.contents(atPath: file.path) else {
                throw Failure(description: "cannot read the audit journal \(file.path)")
            }
            // Lines end where the reserved, never written space (zeros) begins.
            let lines = data.withUnsafeBytes { raw -> [UInt8] in
                guard let base = raw.baseAddress else { return [] }
                let end = memchr(base, 0, raw.count).map { $0 - UnsafeMutableRawPointer(mutating: base) } ?? raw.count
                return Array(raw[..<end])
            }
            let read = AuditJournalEntry.read(lines)
            entries += read.entries
            unreadable += read.unreadable
        }
        return (entries.sorted { $0.number < $1.number }, unreadable)
    }

    /// Empties both files once the log holds every line, and readies them; numbering goes on after `number`.
    func reset(after number: Int64) throws {
        for index in files.indices {
            try cleaning(index).run()
            if files[index].base == nil {
                guard
                    let base = mmap(nil, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, files[index].descriptor, 0),
                    base != MAP_FAILED
                else {
                    throw Failure(
                        description: "cannot map the audit journal \(files[index].path): \(String(cString: strerror(errno)))")
                }
                files[index].base = base
            }
            files[index].used = 0
            files[index].last = 0
            files[index].clean = true
        }
        active = 0
        files[active].clean = false
        cleaning = nil
        lastNumber = number
        committed = number
    }

    /// Writes one record's line and returns its number and the detail's canonical JSON; throws, writing
    /// nothing, when it cannot.
    func append(_ record: AuditRecord, time: String) throws -> (number: Int64, detailJSON: [UInt8]) {
        guard !closed, files[active].base != nil else {
            throw Failure(description: "the audit journal is closed: the gateway is stopping")
        }
        let number = lastNumber + 1
        line.removeAll(keepingCapacity: true)
        let detail = AuditJournalEntry(number: number, time: time, record: record).write(to: &line)
        let other = 1 - active
        if files[active].used + line.count > capacity / 2, files[other].clean {
            active = other
            files[active].clean = false
        }
        guard files[active].used + line.count <= capacity else {
            throw Failure(
                description:
                    "the audit journal is full: the audit log is not committing as fast as statements arrive, or its writes fail (see earlier errors)"
            )
        }
        let file = files[active]
        line.withUnsafeBytes { bytes in
            (file.base! + file.used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        files[active].used += line.count
        files[active].last = number
        lastNumber = number
        return (number, Array(line[detail]))
    }

    /// The log now holds every line up to `number`. Returns the file the writer should clean now (outside
    /// the lock, then `cleaned(_:succeeded:)`), if one is ready.
    func committed(through number: Int64) -> Cleaning? {
        committed = max(committed, number)
        let other = 1 - active
        guard cleaning == nil, !files[other].clean, files[other].last <= committed else { return nil }
        cleaning = other
        return self.cleaning(other)
    }

    private func cleaning(_ index: Int) -> Cleaning {
        Cleaning(index: index, path: files[index].path, descriptor: files[index].descriptor, capacity: capacity)
    }

    /// Emptying one file: values only, so it runs outside the lock on a file no one writes to.
    struct Cleaning: Sendable {
        let index: Int
        let path: String
        let descriptor: Int32
        let capacity: Int

        /// Drops the file's lines and reserves its space again (zeros); its mapping stays valid.
        func run() throws {
            guard ftruncate(descriptor, 0) == 0 else {
                throw Failure(description: "cannot empty the audit journal \(path): \(String(cString: strerror(errno)))")
            }
            let status = posix_fallocate(descriptor, 0, off_t(capacity))
            guard status == 0 else {
                throw Failure(
                    description:
                        "cannot reserve \(capacity >> 20) MiB for the audit journal \(path): \(String(cString: strerror(status)))"
                )
            }
        }
    }

    /// The writer finished cleaning `index` (successfully or not).
    func cleaned(_ index: Int, succeeded: Bool) {
        cleaning = nil
        guard succeeded else { return }
        files[index].used = 0
        files[index].last = 0
        files[index].clean = true
    }
}
