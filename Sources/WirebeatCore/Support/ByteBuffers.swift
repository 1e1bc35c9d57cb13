/// Raw byte buffers that grow by doubling (event output lines, a plugin's kept values).
public enum ByteBuffers {
    /// A buffer of at least `needed` bytes, twice `capacity` or more (and at least `minimum`),
    /// holding the first `count` bytes of `buffer`, which is freed. `capacity` is updated.
    public static func grow(_ buffer: UnsafeMutablePointer<UInt8>, count: Int, capacity: inout Int,
                            toAtLeast needed: Int, minimum: Int = 16) -> UnsafeMutablePointer<UInt8> {
        var larger = Swift.max(capacity * 2, minimum)
        while larger < needed { larger *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        grown.update(from: buffer, count: count)
        buffer.deallocate()
        capacity = larger
        return grown
    }
}
