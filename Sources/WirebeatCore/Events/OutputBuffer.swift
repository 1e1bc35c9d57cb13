/// A growable byte buffer that event lines are written into through a raw pointer: one
/// capacity check per event instead of one per appended piece (an event is ~80 pieces).
public final class OutputBuffer {
    @exclusivity(unchecked) public private(set) var count = 0
    @exclusivity(unchecked) public private(set) var capacity: Int
    @exclusivity(unchecked) private var storage: UnsafeMutablePointer<UInt8>

    public init(capacity: Int = 1 << 16) {
        self.capacity = max(capacity, 64)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    /// The bytes written so far (valid until the next write).
    public var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: storage, count: count) }

    public func append(_ byte: UInt8) {
        if count == capacity { grow(to: count + 1) }
        storage[count] = byte
        count += 1
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

    public func removeAll() { count = 0 }

    /// Room for `n` more bytes at the returned address; `commitTail` says how many were used.
    func reserveTail(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if count + n > capacity { grow(to: count + n) }
        return storage + count
    }

    func commitTail(_ n: Int) { count += n }

    private func grow(to needed: Int) {
        storage = ByteBuffers.grow(storage, count: count, capacity: &capacity, toAtLeast: needed)
    }
}
