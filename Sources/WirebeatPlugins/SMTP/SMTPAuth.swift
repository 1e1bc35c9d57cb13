import WirebeatCore

/// An AUTH exchange (RFC 4954). Only the user name is ever extracted; passwords and the lines
/// carrying them are never kept, and `request` shows such lines as `[redacted]`.
struct AuthExchange {
    static let redacted = Array("[redacted]".utf8)

    /// Upper-cased mechanism name.
    let mechanism: String
    /// Client responses so far, the initial response included.
    private(set) var responses = 0
    private(set) var user: String?
    private(set) var cancelled = false

    init(mechanism: String) { self.mechanism = mechanism }

    /// One client response (base64, or `*` to cancel).
    mutating func clientResponse(_ line: ArraySlice<UInt8>) {
        let index = responses
        responses += 1
        let data = line.trimmingSpaces
        if data.count == 1 && data.first == Byte.star { cancelled = true; return }
        guard user == nil, let decoded = Base64.decode(data) else { return }
        user = AuthExchange.userName(mechanism: mechanism, responseIndex: index, decoded: decoded[...])
    }

    /// The authentication identity carried by a decoded response, per mechanism.
    static func userName(mechanism: String, responseIndex: Int, decoded: ArraySlice<UInt8>) -> String? {
        guard responseIndex == 0 else { return nil }
        let name: ArraySlice<UInt8>
        switch mechanism {
        case "PLAIN":
            // authzid NUL authcid NUL password
            let parts = decoded.split(separator: Byte.nul, omittingEmptySubsequences: false)
            guard parts.count == 3 else { return nil }
            name = parts[1].isEmpty ? parts[0] : parts[1]
        case "LOGIN":
            name = decoded
        case "CRAM-MD5":
            // "user hex-digest"
            guard let space = decoded.lastIndex(of: Byte.space) else { return nil }
            name = decoded[..<space]
        case "XOAUTH2":
            // "user=" user ^A "auth=Bearer " token ^A ^A
            let prefix = Array("user=".utf8)
            guard decoded.hasPrefix(ignoringCase: prefix) else { return nil }
            let rest = decoded.dropFirst(prefix.count)
            name = rest[..<(rest.firstIndex(of: 0x01) ?? rest.endIndex)]
        case "OAUTHBEARER":
            // GS2 header "n,a=user," then fields separated by ^A
            let header = decoded[..<(decoded.firstIndex(of: 0x01) ?? decoded.endIndex)]
            guard let a = header.split(separator: Byte.comma).first(where: { $0.starts(with: Array("a=".utf8)) })
            else { return nil }
            name = a.dropFirst(2)
        default:
            return nil
        }
        // A name with control characters is not a name (wrong guess about the mechanism's shape).
        guard !name.isEmpty, name.count <= 256, !name.contains(where: { $0 < 0x20 || $0 == 0x7f }) else { return nil }
        return name.text
    }
}
