#if canImport(Glibc)
import Glibc  // memchr
#elseif canImport(Darwin)
import Darwin
#endif

/// The unparsed bytes of one direction of a TCP stream, in order.
///
/// The TCP layer appends each in-order payload; a plugin's `parse` consumes whole messages
/// from the front and leaves a partial one in place for the next call (the contract of
/// SwiftNIO's `ByteToMessageDecoder`). That makes a parser split-invariant by construction:
/// it never sees segment boundaries, only bytes.
public struct StreamBuffer: Sendable {
    /// The stream's bytes are `storage[..<end]`; what lies past `end` is stale, kept to be
    /// written over: emptying an array keeping its capacity (`removeAll(keepingCapacity:)`,
    /// the generic `replaceSubrange`) cost ~80 instructions a segment between messages.
    @usableFromInline var storage: [UInt8] = []
    @usableFromInline var end = 0
    @usableFromInline var readerIndex = 0
    /// Storage index up to which a search found no LF: a parser waiting for the end of a line
    /// that arrives a few bytes at a time scans each byte once, not once per call.
    @usableFromInline var noLineFeedBefore = 0

    public init() {}
    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        storage = Array(bytes)
        end = storage.count
    }

    /// Bytes not yet consumed.
    @inlinable public var readableBytes: Int { end - readerIndex }
    @inlinable public var isEmpty: Bool { readerIndex == end }

    /// The unconsumed bytes (indices are positions in the underlying storage).
    @inlinable public var readable: ArraySlice<UInt8> { storage[readerIndex..<end] }

    /// `body` with the unconsumed bytes, in place. For a parser's hot path: a `readable`
    /// slice holds the storage, which costs a retain and a release per call.
    @inlinable public func withReadableBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[readerIndex..<end])) }
    }

    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        // Reclaim consumed space before growing, so a long stream does not keep its history.
        if readerIndex > 0 {
            if readerIndex == end {
                // All consumed (the usual case between messages): no bytes to move.
                end = 0
                noLineFeedBefore = 0
                readerIndex = 0
            } else if readerIndex >= 4096 && readerIndex * 2 >= end {
                // The unread bytes to the front (not the stale ones past `end` too).
                let live = end - readerIndex, from = readerIndex
                storage.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: $0.baseAddress! + from, count: live) }
                end = live
                noLineFeedBefore = max(0, noLineFeedBefore - readerIndex)
                readerIndex = 0
            }
        }
        // A segment's payload is contiguous: one copy, not the generic element-wise append
        // (~330 instructions a segment).
        if bytes.withContiguousStorageIfAvailable({ write($0) }) == nil {
            Array(bytes).withUnsafeBufferPointer { write($0) }
        }
    }

    /// `bytes` at `end`: over the stale bytes there, then appended.
    private mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let from = bytes.baseAddress, bytes.count > 0 else { return }
        let over = min(bytes.count, storage.count - end)
        if over > 0 {
            let at = end
            storage.withUnsafeMutableBufferPointer { ($0.baseAddress! + at).update(from: from, count: over) }
        }
        if over < bytes.count { storage.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[over...])) }
        end += bytes.count
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        append(contentsOf: bytes.bindMemory(to: UInt8.self))
    }

    /// Consumes `count` bytes (clamped to what is there).
    @inlinable public mutating func skip(_ count: Int) {
        readerIndex += min(readableBytes, max(0, count))
    }

    public mutating func removeAll() {
        storage.removeAll(keepingCapacity: storage.count <= 65_536)
        end = 0
        readerIndex = 0
        noLineFeedBefore = 0
    }

    /// Byte at offset `i` from the reader position.
    @inlinable public func byte(at i: Int) -> UInt8? {
        let p = readerIndex + i
        return p < end ? storage[p] : nil
    }

    /// Reads `count` bytes, or nil (consuming nothing) if fewer are available.
    public mutating func readBytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, readableBytes >= count else { return nil }
        let slice = storage[readerIndex..<readerIndex + count]
        readerIndex += count
        return slice
    }

    /// Offset from the reader position of the first LF, searching at most `limit` bytes.
    public mutating func offsetOfLineFeed(limit: Int = .max) -> Int? {
        let end = limit >= self.end - readerIndex ? self.end : readerIndex + limit
        let from = max(readerIndex, noLineFeedBefore)
        if from < end {
            // memchr: vectorised, some ten times faster than a byte loop on message bodies.
            let found: Int? = storage.withUnsafeBufferPointer { bytes in
                guard let hit = memchr(bytes.baseAddress! + from, 0x0a, end - from) else { return nil }
                return bytes.baseAddress!.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            }
            if let found { return found - readerIndex }
        }
        noLineFeedBefore = max(noLineFeedBefore, end)
        return nil
    }

    /// Reads one line ending in LF (CRLF or bare LF); the terminator is consumed but not
    /// returned. Returns nil, consuming nothing, when no complete line is buffered.
    public mutating func readLine() -> ArraySlice<UInt8>? {
        guard let lf = offsetOfLineFeed() else { return nil }
        var end = readerIndex + lf
        if end > readerIndex && storage[end - 1] == 0x0d { end -= 1 }
        let line = storage[readerIndex..<end]
        readerIndex += lf + 1
        return line
    }

    /// Offset from the reader position where `pattern` starts, or nil.
    public func offset(of pattern: [UInt8], from start: Int = 0) -> Int? {
        guard let first = pattern.first, pattern.count <= readableBytes else { return nil }
        var i = readerIndex + max(0, start)
        let last = end - pattern.count
        while i <= last {
            if storage[i] == first {
                var j = 1
                while j < pattern.count && storage[i + j] == pattern[j] { j += 1 }
                if j == pattern.count { return i - readerIndex }
            }
            i += 1
        }
        return nil
    }
}
