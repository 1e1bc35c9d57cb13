/// Raw buffers that grow by doubling (event output lines, a plugin's kept values, a
/// worker's event records).
public enum ByteBuffers {
    /// A buffer of at least `needed` elements, twice `capacity` or more (and at least
    /// `minimum`), holding the first `count` elements of `buffer`, moved over; `buffer` is
    /// freed. `capacity` is updated.
    @inlinable
    public static func grow<Element>(_ buffer: UnsafeMutablePointer<Element>, count: Int, capacity: inout Int,
                                     toAtLeast needed: Int, minimum: Int = 16) -> UnsafeMutablePointer<Element> {
        var larger = Swift.max(capacity * 2, minimum)
        while larger < needed { larger *= 2 }
        let grown = UnsafeMutablePointer<Element>.allocate(capacity: larger)
        grown.moveInitialize(from: buffer, count: count)
        buffer.deallocate()
        capacity = larger
        return grown
    }
}
