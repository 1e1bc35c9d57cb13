import WirebeatCore
#if canImport(Glibc)
import Glibc  // memcmp
#elseif canImport(Darwin)
import Darwin
#endif

/// The notes SMTP events carry in `error.message`; one wording per situation.
enum Note {
    static let packetLoss = "packet loss"
    static let noResponse = "no response"
    static let closedEarly = "connection closed before the mail transaction completed"
    static let mailNotSeen = "MAIL command not seen"
    static let lineTooLong = "command line too long"
    static let earlyReply = "server replied before the end of the message data"
    static let replaced = "mail transaction replaced by a new MAIL command"
    static let heloNotSeen = "session picked up mid-stream: HELO/EHLO not seen"
    static let greetingNotCertain = "session picked up mid-stream: this reply may not be the greeting"
    static func abortedBy(_ verb: String) -> String { "mail transaction aborted by \(verb)" }
}

/// Notes in the order they were added, without repeats.
struct Notes {
    private(set) var list: [String] = []
    var isEmpty: Bool { list.isEmpty }
    func contains(_ note: String) -> Bool { list.contains(note) }
    mutating func add(_ note: String) { if !list.contains(note) { list.append(note) } }
    mutating func add(_ other: Notes) { for n in other.list { add(n) } }
}

/// A complete (possibly multi-line) server reply.
struct Reply {
    static let maxPhrases = 256
    static let maxRawBytes = 65_536

    var code: Int
    /// `smtp.response.phrases` (each line's text) as JSON text, built as the lines arrive:
    /// `[` and the strings so far; `finish()` closes it.
    private(set) var phrasesJSON: [UInt8]
    private var phraseCount = 0
    var bytes = 0
    /// The raw text, kept only for `send_response`.
    var raw: [UInt8]?
    let start: Timestamp
    var end: Timestamp

    /// `phrasesBuffer`: an earlier reply's buffer (see `recyclePhrasesBuffer()`), so that a
    /// session's replies share one allocation.
    init(code: Int, raw: [UInt8]?, start: Timestamp, end: Timestamp, phrasesBuffer: [UInt8] = []) {
        self.code = code
        self.raw = raw
        self.start = start
        self.end = end
        phrasesJSON = phrasesBuffer
        if !phrasesJSON.isEmpty { phrasesJSON.removeAll(keepingCapacity: true) }
        phrasesJSON.append(UInt8(ascii: "["))
        if phrasesJSON.capacity < 128 { phrasesJSON.reserveCapacity(128) }  // most replies: one allocation
    }

    /// A one-line reply whose phrases' JSON text (closed) is known already (`ReplyCache`).
    init(code: Int, raw: [UInt8]?, start: Timestamp, end: Timestamp, phrasesJSON: [UInt8]) {
        self.code = code
        self.raw = raw
        self.start = start
        self.end = end
        self.phrasesJSON = phrasesJSON
        phraseCount = 1
    }

    /// The phrases' buffer for the next reply (once the events have copied it), which
    /// empties it.
    mutating func recyclePhrasesBuffer() -> [UInt8] {
        var buffer: [UInt8] = []
        swap(&buffer, &phrasesJSON)
        return buffer
    }

    mutating func addPhrase(_ text: UnsafeBufferPointer<UInt8>) {
        guard phraseCount < Reply.maxPhrases else { return }
        if phraseCount > 0 { phrasesJSON.append(Byte.comma) }
        phraseCount += 1
        SMTPJSON.string(text, into: &phrasesJSON)
    }

    /// The last line is in.
    mutating func finish() { phrasesJSON.append(UInt8(ascii: "]")) }

    var isSuccess: Bool { code >= 200 && code < 300 }
    var isError: Bool { code >= 400 }
}

/// Recent MAIL and RCPT arguments and their JSON text (`smtp.request.param`, and the path for
/// `smtp.mail_from` or `smtp.rcpt_to`; each empty for none): mail after mail, a session mostly
/// repeats them, so they are compared rather than parsed and encoded again.
struct RecentArguments {
    private struct Entry {
        var verb: Verb
        var text: [UInt8]
        var param: [UInt8]
        var path: [UInt8]
        /// A RCPT's path as a JSON array of one (`smtp.rcpt_to` of a mail with one recipient).
        var listed: [UInt8]
    }
    private var entries: [Entry] = []
    /// The entry replaced next, once there are `capacity`.
    private var next = 0
    /// Once full, an entry is replaced only if one was found since the last store, or after
    /// 8 misses: arguments that never repeat do not cost a copy each.
    private var foundSinceStore = false
    private var missesSinceStore = 0
    /// The verbs seen once: arguments are kept from a verb's second command on, so a
    /// session with a single mail allocates nothing for this.
    private var seen: UInt32 = 0

    private static let capacity = 8
    private static let maxText = 512  // longer ones are not kept: the session's memory stays small

    /// The entry for `verb` with arguments `rest`.
    mutating func find(_ verb: Verb, _ rest: ArraySlice<UInt8>) -> Int? {
        rest.withUnsafeBufferPointer { new in
            for i in entries.indices where entries[i].verb == verb && entries[i].text.count == new.count {
                let same = entries[i].text.withUnsafeBufferPointer { kept in
                    new.isEmpty || memcmp(kept.baseAddress!, new.baseAddress!, new.count) == 0
                }
                if same {
                    foundSinceStore = true
                    return i
                }
            }
            return nil
        }
    }

    func param(_ i: Int) -> [UInt8] { entries[i].param }
    func path(_ i: Int) -> [UInt8] { entries[i].path }
    func listed(_ i: Int) -> [UInt8] { entries[i].listed }

    private static func listed(_ verb: Verb, _ path: ArraySlice<UInt8>) -> [UInt8] {
        verb == .rcpt && !path.isEmpty ? [UInt8(ascii: "[")] + path + [UInt8(ascii: "]")] : []
    }

    /// Keeps a command's arguments and their JSON text (copied: the buffers are this one's own).
    mutating func store(_ verb: Verb, _ rest: ArraySlice<UInt8>, param: [UInt8], path: ArraySlice<UInt8>) {
        guard rest.count <= RecentArguments.maxText else { return }
        let bit: UInt32 = 1 << UInt32(verb.rawValue)
        guard seen & bit != 0 else {
            seen |= bit
            return
        }
        if entries.count < RecentArguments.capacity {
            entries.append(Entry(verb: verb, text: Array(rest), param: param, path: Array(path),
                                 listed: RecentArguments.listed(verb, path)))
            return
        }
        guard foundSinceStore || missesSinceStore >= 8 else {
            missesSinceStore += 1
            return
        }
        foundSinceStore = false
        missesSinceStore = 0
        let i = next
        next = (next + 1) % RecentArguments.capacity
        entries[i].verb = verb
        entries[i].text.removeAll(keepingCapacity: true)
        entries[i].text.append(contentsOf: rest)
        entries[i].param.removeAll(keepingCapacity: true)
        entries[i].param.append(contentsOf: param)
        entries[i].path.removeAll(keepingCapacity: true)
        entries[i].path.append(contentsOf: path)
        entries[i].listed = RecentArguments.listed(verb, path)
    }
}

/// The last short text seen in each of a few slots, with the JSON text made of it: a
/// session sees the same few values again and again (replies such as "250 OK", From and To
/// headers), so a value is compared with the slot's last one (~30 instructions) instead of
/// being parsed and encoded again (~450). A value that differs every time (the queue id
/// after the data) is not copied in every time: a slot whose value was never found again
/// keeps it for the next 8 stores.
struct RecentTexts {
    private struct Entry {
        var text: [UInt8] = []
        var json: [UInt8] = []
        var valid = false
        var hit = false
        /// Values not kept since this one, which was never found again.
        var skipped = 0
    }
    private var entries: [Entry] = []
    private let slotCount: Int
    /// With `fromSecondValue`, a slot keeps values from its second one on (so a session with
    /// a single mail allocates nothing); `seen` has a bit per slot that has had one.
    private let fromSecondValue: Bool
    private var seen: UInt64 = 0

    init(slots: Int, fromSecondValue: Bool) {
        precondition(slots <= 64)
        slotCount = slots
        self.fromSecondValue = fromSecondValue
    }

    /// The JSON text kept for `text`, if it is the slot's last value (it may be empty).
    mutating func json(slot: Int, text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard slot < entries.count, entries[slot].valid else { return nil }
        let same = entries[slot].text.withUnsafeBufferPointer { kept in
            kept.count == text.count && (text.isEmpty || memcmp(kept.baseAddress!, text.baseAddress!, text.count) == 0)
        }
        guard same else { return nil }
        if !entries[slot].hit { entries[slot].hit = true }  // (a write makes the array unique first)
        return entries[slot].json
    }

    /// Keeps `text` and its JSON text (copied: the buffers are the slot's own). Long values
    /// are not kept: the session's memory stays small.
    mutating func store(slot: Int, text: UnsafeBufferPointer<UInt8>, json: [UInt8]) {
        guard text.count <= 256 else { return }
        if fromSecondValue {
            let bit: UInt64 = 1 << UInt64(slot)
            guard seen & bit != 0 else {
                seen |= bit
                return
            }
        }
        if entries.isEmpty { entries = Array(repeating: Entry(), count: slotCount) }
        if entries[slot].valid && !entries[slot].hit && entries[slot].skipped < 8 {
            entries[slot].skipped += 1
            return
        }
        entries[slot].valid = true
        entries[slot].hit = false
        entries[slot].skipped = 0
        entries[slot].text.removeAll(keepingCapacity: true)
        entries[slot].text.append(contentsOf: text)
        entries[slot].json.removeAll(keepingCapacity: true)
        entries[slot].json.append(contentsOf: json)
    }
}

/// The phrases' JSON text of the last one-line reply to each kind of command (see
/// `RecentTexts`): one slot per verb, one for the end of data, one for a reply to no command.
struct ReplyCache {
    private static let slotCount = Verb.other.rawValue + 3
    private var recent = RecentTexts(slots: ReplyCache.slotCount, fromSecondValue: true)

    /// The slot of a reply to `item` (the oldest command waiting), or to none.
    static func slot(answering item: PendingCommand?) -> Int {
        guard let item else { return slotCount - 1 }
        return item.kind == .endOfData ? slotCount - 2 : item.verb.rawValue
    }

    /// The phrases' JSON text of a one-line reply with `text`, if it is the slot's last one.
    mutating func phrasesJSON(slot: Int, text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        recent.json(slot: slot, text: text)
    }

    mutating func store(slot: Int, text: UnsafeBufferPointer<UInt8>, phrasesJSON: [UInt8]) {
        recent.store(slot: slot, text: text, json: phrasesJSON)
    }
}

/// JSON text kept by a command or transaction: its own buffer, emptied for reuse with its
/// capacity, or one shared with `RecentArguments` (referred to, not copied: copying a MAIL's
/// or RCPT's text in, then emptying the buffer again, cost ~170 instructions a field).
struct JSONText {
    /// Appending to shared text copies it first (arrays are values): the sharer is unchanged.
    var bytes: [UInt8] = []
    private var isShared = false

    var isEmpty: Bool { bytes.isEmpty }

    mutating func share(_ text: [UInt8]) {
        bytes = text
        isShared = true
    }

    /// Empty again; an own buffer keeps its capacity.
    mutating func clear() {
        if isShared {
            bytes = []
            isShared = false
        } else if !bytes.isEmpty {
            bytes.removeAll(keepingCapacity: true)
        }
    }
}

/// A command sent and not yet answered, or the end of a message's data (`.`), whose reply
/// completes its mail transaction. (`@exclusivity(unchecked)`: see `SMTPSession`.)
///
/// The session reuses completed commands (`clear()`, then `reuse`): no allocation per command.
final class PendingCommand {
    enum Kind { case command, endOfData }

    private(set) var kind: Kind
    private(set) var verb: Verb
    /// The text of an `other` verb (upper-cased), `.` for the end of data.
    private(set) var otherVerb: String?
    /// `smtp.request.param` as JSON text (no String made of it); empty for none.
    @exclusivity(unchecked) var param = JSONText()
    private(set) var start: Timestamp
    @exclusivity(unchecked) var clientBytes = 0
    @exclusivity(unchecked) var serverBytes = 0
    @exclusivity(unchecked) var request: [UInt8]?
    @exclusivity(unchecked) var response: [UInt8]?
    @exclusivity(unchecked) var notes = Notes()
    /// The transaction whose byte counts and fields this command feeds.
    @exclusivity(unchecked) var transaction: MailTransaction?
    /// The transaction this command ends (RSET, QUIT, HELO/EHLO, STARTTLS).
    @exclusivity(unchecked) var abortTarget: MailTransaction?
    /// A RCPT's address: the range of its JSON string in the transaction's `rcptTo`.
    @exclusivity(unchecked) var recipient: Range<Int>?
    @exclusivity(unchecked) var auth: AuthExchange?
    /// A valid `BDAT <size> [LAST]`, whose reply matters to its transaction.
    @exclusivity(unchecked) var isChunk = false
    @exclusivity(unchecked) var bdatLast = false
    /// Stands for a line too long to parse: only its reply is paired, nothing is inferred.
    @exclusivity(unchecked) var isPlaceholder = false
    /// The client waits for this command's reply before sending more (DATA, AUTH, STARTTLS).
    @exclusivity(unchecked) var blocksClient = false

    /// A command (`otherVerb` as for `.other`), or with `.endOfData` the end of a message's data.
    init(_ kind: Kind, verb: Verb, otherVerb: String?, start: Timestamp) {
        self.kind = kind
        self.verb = verb
        self.otherVerb = otherVerb
        self.start = start
    }

    /// A cleared command made a new one, as `init` makes it.
    func reuse(_ kind: Kind, verb: Verb, otherVerb: String?, start: Timestamp) {
        self.kind = kind
        self.verb = verb
        self.otherVerb = otherVerb
        self.start = start
    }

    /// Every other field back to its initial value (buffers keep their capacity), the
    /// transactions let go: ready for `reuse`. (Fields usually at their initial value already
    /// are tested first: a test is cheaper than storing and releasing.)
    func clear() {
        if otherVerb != nil { otherVerb = nil }
        param.clear()
        clientBytes = 0
        serverBytes = 0
        if request != nil { request = nil }
        if response != nil { response = nil }
        if !notes.isEmpty { notes = Notes() }
        transaction = nil
        if abortTarget != nil { abortTarget = nil }
        recipient = nil
        if auth != nil { auth = nil }
        isChunk = false
        bdatLast = false
        isPlaceholder = false
        blocksClient = false
    }

    /// The verb as the event shows it.
    var verbName: String { otherVerb ?? verb.name }

    func addClientBytes(_ n: Int) {
        clientBytes += n
        transaction?.clientBytes += n
    }

    func addReply(_ reply: Reply) {
        serverBytes += reply.bytes
        transaction?.serverBytes += reply.bytes
        if let raw = reply.raw {
            response = (response ?? []) + raw.prefix(max(0, Reply.maxRawBytes - (response?.count ?? 0)))
        }
    }
}

/// One mail transaction: MAIL FROM, the RCPTs, the message data, the final reply.
/// (`@exclusivity(unchecked)`: see `SMTPSession`.)
///
/// The session reuses finished transactions (`clear()`, then `reuse`): no allocation per mail
/// for the object and its buffers.
final class MailTransaction {
    private(set) var start: Timestamp
    /// Started by RCPT/DATA/BDAT without a MAIL we saw (connection picked up mid-transaction).
    private(set) var implicit: Bool
    // `smtp.helo`, `smtp.mail_from`, `smtp.rcpt_to` and `smtp.rcpt_rejected` as JSON text,
    // encoded as the commands arrive: no String per address, no array of them. The arrays'
    // text is empty for no address, else a whole JSON array.
    @exclusivity(unchecked) var helo: [UInt8]?
    @exclusivity(unchecked) var mailFrom = JSONText()
    @exclusivity(unchecked) var rcptTo = JSONText()
    @exclusivity(unchecked) var rcptRejected: [UInt8] = []
    @exclusivity(unchecked) var notes = Notes()
    @exclusivity(unchecked) var clientBytes = 0
    @exclusivity(unchecked) var serverBytes = 0
    /// nil while the MAIL is unanswered.
    @exclusivity(unchecked) var mailAccepted: Bool?
    @exclusivity(unchecked) var rcptAccepted = false
    @exclusivity(unchecked) var dataStarted = false
    /// The terminating `.` or `BDAT ... LAST` was sent.
    @exclusivity(unchecked) var dataComplete = false
    @exclusivity(unchecked) var dataBytes = 0
    @exclusivity(unchecked) var headers = MessageHeaderCollector()
    /// A transaction still open when this one's MAIL was sent (nested MAIL): it stays current
    /// if the server refuses the new MAIL.
    @exclusivity(unchecked) var previous: MailTransaction?
    /// Published or discarded: never touched again.
    @exclusivity(unchecked) var finished = false

    init(start: Timestamp, implicit: Bool, helo: [UInt8]?) {
        self.start = start
        self.implicit = implicit
        self.helo = helo
        if implicit { notes.add(Note.mailNotSeen) }
    }

    /// A cleared transaction made a new one, as `init` makes it.
    func reuse(start: Timestamp, implicit: Bool, helo: [UInt8]?) {
        self.start = start
        self.implicit = implicit
        self.helo = helo
        if implicit { notes.add(Note.mailNotSeen) }
    }

    /// Every other field back to its initial value (buffers keep their capacity), the other
    /// transaction let go: ready for `reuse`.
    func clear() {
        helo = nil
        mailFrom.clear()
        rcptTo.clear()
        if !rcptRejected.isEmpty { rcptRejected.removeAll(keepingCapacity: true) }
        if !notes.isEmpty { notes = Notes() }
        clientBytes = 0
        serverBytes = 0
        mailAccepted = nil
        rcptAccepted = false
        dataStarted = false
        dataComplete = false
        dataBytes = 0
        headers.reset()
        if previous != nil { previous = nil }
        finished = false
    }

    /// A refused MAIL (or a RCPT-only fragment the server refused) is no transaction at all.
    var isWorthPublishing: Bool {
        implicit ? (rcptAccepted || dataStarted) : mailAccepted != false
    }

    /// Adds a RCPT address to `rcptTo`; returns where its JSON string is, for `rejectRecipient`.
    func addRecipient(_ address: ArraySlice<UInt8>) -> Range<Int> {
        // The first: one allocation unless escapes are needed (later ones grow geometrically).
        if rcptTo.isEmpty { rcptTo.bytes.reserveCapacity(address.count + 4) }
        MailTransaction.openArray(&rcptTo.bytes)
        let start = rcptTo.bytes.count
        address.withUnsafeBufferPointer { SMTPJSON.string($0, into: &rcptTo.bytes) }
        let range = start..<rcptTo.bytes.count
        rcptTo.bytes.append(UInt8(ascii: "]"))
        return range
    }

    /// `addRecipient` for an address whose JSON string (`json`) and JSON array of it alone
    /// (`listed`) are known already: the first recipient shares `listed`.
    func addRecipient(json: [UInt8], listed: [UInt8]) -> Range<Int> {
        if rcptTo.isEmpty {
            rcptTo.share(listed)
            return 1..<listed.count - 1
        }
        MailTransaction.openArray(&rcptTo.bytes)
        let start = rcptTo.bytes.count
        rcptTo.bytes.append(contentsOf: json)
        let range = start..<rcptTo.bytes.count
        rcptTo.bytes.append(UInt8(ascii: "]"))
        return range
    }

    /// The server refused the recipient at `range` of `rcptTo`.
    func rejectRecipient(_ range: Range<Int>) {
        MailTransaction.openArray(&rcptRejected)
        rcptRejected.append(contentsOf: rcptTo.bytes[range])
        rcptRejected.append(UInt8(ascii: "]"))
    }

    /// Makes room for one more string in the JSON array text `json` (empty for none): its
    /// `]` becomes a comma.
    private static func openArray(_ json: inout [UInt8]) {
        if json.isEmpty { json.append(UInt8(ascii: "[")) } else { json[json.count - 1] = Byte.comma }
    }

    func addData(_ bytes: UnsafeBufferPointer<UInt8>) {
        dataBytes += bytes.count
        clientBytes += bytes.count
        if !headers.complete { headers.feed(contiguous: bytes) }
    }
}
