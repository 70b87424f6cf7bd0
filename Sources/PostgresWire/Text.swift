import NIOCore

extension ByteBuffer {
    /// Reads a NUL-terminated string whose bytes must be valid UTF-8, as the gateway's sessions are.
    ///
    /// NIO's `readNullTerminatedString` decodes invalid bytes as U+FFFD, so the text the gateway judged
    /// would differ from the bytes the server reads. Here invalid bytes are an error and nothing is read.
    /// - Returns: nil when no terminator is found.
    /// - Throws: `PostgresWireError(.invalidTextEncoding)` when the bytes are not valid UTF-8.
    public mutating func readValidatedString() throws -> String? {
        guard let terminator = readableBytesView.firstIndex(of: 0) else { return nil }
        let length = terminator - readableBytesView.startIndex
        let text = try getValidatedString(at: readerIndex, length: length)
        moveReaderIndex(forwardBy: length + 1)
        return text
    }

    /// The `length` bytes at `index` as a string, when they are valid UTF-8.
    public func getValidatedString(at index: Int, length: Int) throws -> String {
        guard let bytes = viewBytes(at: index, length: length) else {
            throw PostgresWireError(.malformedMessage, "a string runs past the end of its message")
        }
        // ASCII, the common case, needs no validation beyond the scan.
        if !bytes.contains(where: { $0 >= 0x80 }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let offset = Self.firstInvalidUTF8Offset(bytes)
            throw PostgresWireError(
                .invalidTextEncoding,
                "invalid byte sequence for encoding \"UTF8\" at byte \(offset + 1): Gatehouse sessions use UTF8")
        }
        return text
    }

    /// Where the first byte that is not part of a valid UTF-8 sequence stands.
    static func firstInvalidUTF8Offset(_ bytes: ByteBufferView) -> Int {
        let all = Array(bytes)
        var offset = 0
        while offset < all.count {
            var iterator = all[offset...].makeIterator()
            var decoder = UTF8()
            guard case .scalarValue(let scalar) = decoder.decode(&iterator) else { return offset }
            offset += UTF8.width(scalar)
        }
        return offset
    }
}
