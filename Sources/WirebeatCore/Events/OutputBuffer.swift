/// A growable byte buffer that event lines are written into through a raw pointer: one
/// capacity check per event instead of one per appended piece (an event is ~80 pieces).
public final class OutputBuffer {
    // Internal names with public getters: the appends a plugin's field value is written
    // with are inlinable (`FieldOutput`).
    @exclusivity(unchecked) @usableFromInline var used = 0
    @exclusivity(unchecked) @usableFromInline var room: Int
    @exclusivity(unchecked) @usableFromInline var storage: UnsafeMutablePointer<UInt8>
    public var count: Int { used }
    public var capacity: Int { room }

    public init(capacity: Int = 1 << 16) {
        room = max(capacity, 64)
        storage = .allocate(capacity: room)
    }

    deinit { storage.deallocate() }

    /// The bytes written so far (valid until the next write).
    public var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: storage, count: count) }

    public func append(_ byte: UInt8) {
        if used == room { grow(to: used + 1) }
        storage[used] = byte
        used += 1
    }

    public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { b in
            let end = reserveTail(b.count)
            if b.count > 0 { end.update(from: b.baseAddress!, count: b.count) }
            commitTail(b.count)
        }
    }

    public func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        let end = reserveTail(bytes.count)
        if bytes.count > 0 { end.update(from: bytes.baseAddress!, count: bytes.count) }
        commitTail(bytes.count)
    }

    public func removeAll() { used = 0 }

    /// The first byte (valid until the next write).
    @inlinable var base: UnsafeMutablePointer<UInt8> { storage }

    /// Room for `n` more bytes at the returned address; `commitTail` says how many were used.
    @inlinable @inline(__always) func reserveTail(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if used &+ n > room { grow(to: used &+ n) }
        return storage + used
    }

    @inlinable @inline(__always) func commitTail(_ n: Int) { used &+= n }

    /// Appends through the inlinable path (a plugin's field value is written piece by piece).
    @inlinable @inline(__always) func appendByte(_ byte: UInt8) {
        reserveTail(1).pointee = byte
        used &+= 1
    }

    /// (Short pieces copied inline, as an event's: a `memmove` call costs more than they do.)
    @inlinable @inline(__always) func appendBytes(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let from = bytes.baseAddress, bytes.count > 0 else { return }
        EventStorage.copy(from: from, count: bytes.count, to: reserveTail(bytes.count))
        used &+= bytes.count
    }

    /// Drops what was written after `count` bytes.
    func truncate(to count: Int) {
        precondition(count >= 0 && count <= used)
        used = count
    }

    @usableFromInline func grow(to needed: Int) {
        storage = ByteBuffers.grow(storage, count: used, capacity: &room, toAtLeast: needed)
    }
}
