import Testing
import WirebeatCore
@testable import WirebeatPlugins

// MARK: - Conversations

let greeting = Step.server("220 mail.example.com ESMTP Postfix\r\n")
let ehlo: [Step] = [
    .client("EHLO client.example.org\r\n"),
    .server("250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-CHUNKING\r\n250 8BITMIME\r\n"),
]
let quit: [Step] = [.client("QUIT\r\n"), .server("221 2.0.0 Bye\r\n"), .fin(.original), .fin(.reverse)]

let plainMessage = """
    From: Alice <alice@example.org>\r
    To: Bob <bob@example.com>, "Carol, C." <carol@example.com>\r
    Cc: dave@example.com (Dave)\r
    Subject: =?UTF-8?B?SGVsbG8gd29ybGQ=?= =?ISO-8859-1?Q?caf=E9?=\r
     again\r
    Message-ID: <1234@example.org>\r
    \r
    Hello Bob.\r
    ..leading dot\r
    .\r

    """
/// The message as the server stores it: dot-unstuffed, without the terminator.
let plainMessageStored = """
    From: Alice <alice@example.org>\r
    To: Bob <bob@example.com>, "Carol, C." <carol@example.com>\r
    Cc: dave@example.com (Dave)\r
    Subject: =?UTF-8?B?SGVsbG8gd29ybGQ=?= =?ISO-8859-1?Q?caf=E9?=\r
     again\r
    Message-ID: <1234@example.org>\r
    \r
    Hello Bob.\r
    .leading dot\r

    """

let plainSession: [Step] = [greeting] + ehlo + [
    .client("MAIL FROM:<alice@example.org> SIZE=123 BODY=8BITMIME\r\n"),
    .server("250 2.1.0 Ok\r\n"),
    .client("RCPT TO:<bob@example.com>\r\n"),
    .server("250 2.1.5 Ok\r\n"),
    .client("RCPT TO:<carol@example.com>\r\n"),
    .server("250 2.1.5 Ok\r\n"),
    .client("DATA\r\n"),
    .server("354 End data with <CR><LF>.<CR><LF>\r\n"),
    .client(plainMessage),
    .server("250 2.0.0 Ok: queued as 12345\r\n"),
] + quit

let pipelinedSession: [Step] = [greeting] + ehlo + [
    .client("MAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.com>\r\nRCPT TO:<e@example.com>\r\nDATA\r\n"),
    .server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <e@example.com>: Recipient address rejected\r\n354 go ahead\r\n"),
    .client("Subject: first\r\n\r\nbody\r\n.\r\nMAIL FROM:<g@example.org>\r\nRCPT TO:<i@example.com>\r\nDATA\r\n"),
    .server("250 2.0.0 Ok: queued as A1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"),
    .client("\r\nbody2\r\n.\r\nQUIT\r\n"),
    .server("250 2.0.0 Ok: queued as A2\r\n221 2.0.0 Bye\r\n"),
    .fin(.original), .fin(.reverse),
]

let bdatSession: [Step] = [greeting] + ehlo + [
    .client("MAIL FROM:<a@example.org>\r\n"),
    .server("250 2.1.0 Ok\r\n"),
    .client("RCPT TO:<c@example.com>\r\n"),
    .server("250 2.1.5 Ok\r\n"),
    .client("BDAT 20\r\nSubject: chunked\r\n\r\n"),
    .server("250 2.0.0 20 octets received\r\n"),
    // No dot handling in chunks: this ".\r\n" is message content.
    .client("BDAT 6 LAST\r\nx\r\n.\r\n"),
    .server("250 2.0.0 Message accepted\r\n"),
] + quit

let authPlain = Base64.encode(Array("\u{0}alice\u{0}s3cretPass".utf8))
let authSession: [Step] = [greeting] + ehlo + [
    .client("AUTH PLAIN \(authPlain)\r\n"),
    .server("235 2.7.0 Authentication successful\r\n"),
    .client("AUTH LOGIN\r\n"),
    .server("334 VXNlcm5hbWU6\r\n"),
    .client("Ym9i\r\n"),  // bob
    .server("334 UGFzc3dvcmQ6\r\n"),
    .client("aHVudGVyMg==\r\n"),  // hunter2
    .server("535 5.7.8 Authentication failed\r\n"),
] + quit

let secretTexts = ["s3cretPass", authPlain, "hunter2", "aHVudGVyMg=="]

// MARK: - Sessions

@Test func plainSessionEvents() {
    let events = runSMTP(plainSession)
    #expect(events.map { $0.smtpType ?? "" } == ["PROMPT", "COMMAND", "COMMAND", "COMMAND", "COMMAND", "COMMAND", "MAIL", "COMMAND"])
    #expect(events.commands == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"])
    for e in events {
        #expect(e.type == "smtp")
        #expect(e.notes == nil)
        #expect(e.string("status") == "OK")
    }

    let prompt = events[0]
    #expect(prompt.code == 220)
    #expect(prompt.strings("smtp.response.phrases") == ["mail.example.com ESMTP Postfix"])

    let ehloEvent = events[1]
    #expect(ehloEvent.string("smtp.request.param") == "client.example.org")
    #expect(ehloEvent.strings("smtp.response.phrases") == ["mail.example.com", "PIPELINING", "SIZE 10240000", "CHUNKING", "8BITMIME"])
    #expect(ehloEvent.int("source.bytes") == 25)
    #expect(ehloEvent.code == 250)

    let mailCommand = events[2]
    #expect(mailCommand.string("smtp.request.param") == "FROM:<alice@example.org> SIZE=123 BODY=8BITMIME")
    #expect(events[5].code == 354)
    #expect(events[5].string("smtp.request.param") == nil)

    let mail = events[6]
    #expect(mail.string("smtp.mail_from") == "alice@example.org")
    #expect(mail.strings("smtp.rcpt_to") == ["bob@example.com", "carol@example.com"])
    #expect(mail["smtp.rcpt_rejected"] == nil)
    #expect(mail.code == 250)
    #expect(mail.strings("smtp.response.phrases") == ["2.0.0 Ok: queued as 12345"])
    #expect(mail.int("smtp.data_bytes") == Int64(plainMessageStored.utf8.count))
    #expect(mail.string("smtp.helo") == "client.example.org")
    #expect(mail.string("email.subject") == "Hello worldcafé again")
    #expect(mail.string("email.message_id") == "1234@example.org")
    #expect(mail.strings("email.from.address") == ["alice@example.org"])
    #expect(mail.strings("email.to.address") == ["bob@example.com", "carol@example.com"])
    #expect(mail.strings("email.cc.address") == ["dave@example.com"])
    // MAIL command time to the final reply; every client byte from MAIL to the terminator.
    #expect(mail.string("@timestamp") == mailCommand.string("@timestamp"))
    let clientBytes = ["MAIL FROM:<alice@example.org> SIZE=123 BODY=8BITMIME\r\n", "RCPT TO:<bob@example.com>\r\n",
                       "RCPT TO:<carol@example.com>\r\n", "DATA\r\n", plainMessage].map(\.utf8.count).reduce(0, +)
    #expect(mail.int("source.bytes") == Int64(clientBytes))
    let serverBytes = ["250 2.1.0 Ok\r\n", "250 2.1.5 Ok\r\n", "250 2.1.5 Ok\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n",
                       "250 2.0.0 Ok: queued as 12345\r\n"].map(\.utf8.count).reduce(0, +)
    #expect(mail.int("destination.bytes") == Int64(serverBytes))
}

@Test func timestampsArePacketTimes() {
    let events = runSMTP(plainSession)
    let mail = events.ofType("MAIL")[0]
    // Step times are 10 ms apart from 1_700_000_000 s: MAIL is step 3, the final 250 step 12.
    #expect(mail.string("@timestamp") == Timestamp(seconds: 1_700_000_000, nanoseconds: 40_000_000).rfc3339)
    #expect(mail.string("event.end") == Timestamp(seconds: 1_700_000_000, nanoseconds: 130_000_000).rfc3339)
    #expect(events[0].string("@timestamp") == Timestamp(seconds: 1_700_000_000, nanoseconds: 10_000_000).rfc3339)
}

@Test func splitInvariance() {
    for session in [plainSession, pipelinedSession, bdatSession, authSession, starttlsSession, pickupSession] {
        expectSplitInvariant(session)
    }
    expectSplitInvariant(authSession, config: ["send_request": .scalar("true"), "send_response": .scalar("true")])
}

@Test func pipelining() {
    let events = runSMTP(pipelinedSession)
    #expect(events.commands == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "MAIL", "RCPT", "DATA", "QUIT"])
    let rcpts = events.filter { $0.command == "RCPT" }
    #expect(rcpts.map(\.code) == [250, 550, 250])
    #expect(rcpts[1].string("status") == "Error")
    let mails = events.ofType("MAIL")
    #expect(mails.count == 2)
    #expect(mails[0].strings("smtp.rcpt_to") == ["c@example.com", "e@example.com"])
    #expect(mails[0].strings("smtp.rcpt_rejected") == ["e@example.com"])
    #expect(mails[0].string("email.subject") == "first")
    #expect(mails[0].strings("smtp.response.phrases") == ["2.0.0 Ok: queued as A1"])
    #expect(mails[1].string("smtp.mail_from") == "g@example.org")
    #expect(mails[1].strings("smtp.rcpt_to") == ["i@example.com"])
    #expect(mails[1].int("smtp.data_bytes") == 9)
    #expect(mails[1].string("email.subject") == nil)
    #expect(mails[1].strings("smtp.response.phrases") == ["2.0.0 Ok: queued as A2"])
    #expect(events.allSatisfy { $0.notes == nil })
}

@Test func multiLineRepliesAndLowerCaseCommands() {
    let events = runSMTP([greeting,
        .client("ehlo x.example\r\n"),
        .server("250-a\r\n250-b\r\n250 c\r\n"),
        .client("help\r\n"),
        .server("214-2.0.0 Commands:\r\n214-2.0.0   HELO EHLO MAIL\r\n214 2.0.0 End of HELP info\r\n"),
        .client("mail from:<a@b.example>\r\n"), .server("250 ok\r\n"),
        .client("rcpt to:<c@d.example>\r\n"), .server("250 ok\r\n"),
        .client("data\r\n"), .server("354 go\r\n"),
        .client("subject: lower\r\n\r\nx\r\n.\r\n"), .server("250 queued\r\n"),
        .client("Quit\r\n"), .server("221 bye\r\n"),
    ])
    #expect(events.commands == ["EHLO", "HELP", "MAIL", "RCPT", "DATA", "QUIT"])
    #expect(events[1].strings("smtp.response.phrases") == ["a", "b", "c"])
    #expect(events[2].code == 214)
    #expect(events[2].strings("smtp.response.phrases")?.count == 3)
    let mail = events.ofType("MAIL")
    #expect(mail.count == 1)
    #expect(mail.first?.string("smtp.mail_from") == "a@b.example")
    #expect(mail.first?.string("email.subject") == "lower")
}

let rsetSession: [Step] = [greeting] + ehlo + [
    .client("MAIL FROM:<a@example.org>\r\n"), .server("250 ok\r\n"),
    .client("RCPT TO:<b@example.com>\r\n"), .server("250 ok\r\n"),
    .client("RSET\r\n"), .server("250 2.0.0 Ok\r\n"),
    .client("MAIL FROM:<spam@example.net>\r\n"), .server("550 5.7.1 go away\r\n"),
    .client("RCPT TO:<x@example.com>\r\n"), .server("503 5.5.1 need MAIL\r\n"),
    .client("MAIL FROM:<c@example.org>\r\n"), .server("250 ok\r\n"),
    .client("RCPT TO:<d@example.com>\r\n"), .server("250 ok\r\n"),
    .client("DATA\r\n"), .server("354 go\r\n"),
    .client("\r\nhi\r\n.\r\n"), .server("250 queued\r\n"),
] + quit

@Test func rsetAbortsAndRefusedMailStartsClean() {
    let events = runSMTP(rsetSession)
    let aborted = events.ofType("ABORTED")
    #expect(aborted.count == 1)
    #expect(aborted.first?.string("smtp.mail_from") == "a@example.org")
    #expect(aborted.first?.strings("smtp.rcpt_to") == ["b@example.com"])
    #expect(aborted.first?.string("status") == "Error")
    #expect(aborted.first?.notes == "mail transaction aborted by RSET")
    let mails = events.ofType("MAIL")
    #expect(mails.count == 1)
    #expect(mails.first?.string("smtp.mail_from") == "c@example.org")
    #expect(mails.first?.strings("smtp.rcpt_to") == ["d@example.com"])
    #expect(mails.first?.notes == nil)
    // ABORTED is published after the RSET's own COMMAND event.
    let rset = events.firstIndex { $0.command == "RSET" }!
    #expect(events[rset + 1].smtpType == "ABORTED")
}

@Test func bdatChunks() {
    let events = runSMTP(bdatSession)
    let bdats = events.filter { $0.command == "BDAT" }
    #expect(bdats.map { $0.string("smtp.request.param") } == ["20", "6 LAST"])
    #expect(bdats.map(\.code) == [250, 250])
    let mail = events.ofType("MAIL")
    #expect(mail.count == 1)
    #expect(mail.first?.int("smtp.data_bytes") == 26)
    #expect(mail.first?.string("email.subject") == "chunked")
    #expect(mail.first?.strings("smtp.response.phrases") == ["2.0.0 Message accepted"])
    #expect(events.commands == ["EHLO", "MAIL", "RCPT", "BDAT", "BDAT", "QUIT"])
    #expect(events.allSatisfy { $0.notes == nil })

    // The same, pipelined in one segment.
    let pipelined = runSMTP([greeting] + ehlo + [
        .client("MAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.com>\r\nBDAT 20\r\nSubject: chunked\r\n\r\nBDAT 6 LAST\r\nx\r\n.\r\n"),
        .server("250 ok\r\n250 ok\r\n250 20 octets\r\n250 accepted\r\n"),
    ] + quit)
    #expect(pipelined.ofType("MAIL").first?.int("smtp.data_bytes") == 26)
    #expect(pipelined.commands == ["EHLO", "MAIL", "RCPT", "BDAT", "BDAT", "QUIT"])
}

@Test func authUserNameWithoutCredentials() {
    let config: [String: ConfigValue] = ["send_request": .scalar("true"), "send_response": .scalar("true")]
    let events = runSMTP(authSession, config: config)
    #expect(events.commands == ["EHLO", "AUTH", "AUTH", "QUIT"])
    let auths = events.filter { $0.command == "AUTH" }
    #expect(auths[0].string("smtp.request.param") == "PLAIN")
    #expect(auths[0].string("smtp.auth.mechanism") == "PLAIN")
    #expect(auths[0].string("user.name") == "alice")
    #expect(auths[0].code == 235)
    #expect(auths[0].string("request") == "AUTH PLAIN [redacted]\r\n")
    #expect(auths[1].string("smtp.request.param") == "LOGIN")
    #expect(auths[1].string("user.name") == "bob")
    #expect(auths[1].code == 535)
    #expect(auths[1].string("status") == "Error")
    #expect(auths[1].string("request") == "AUTH LOGIN\r\n[redacted]\r\n[redacted]\r\n")
    #expect(auths[1].int("source.bytes") == Int64("AUTH LOGIN\r\nYm9i\r\naHVudGVyMg==\r\n".utf8.count))
    #expect(auths[1].strings("smtp.response.phrases") == ["5.7.8 Authentication failed"])
    for line in jsonLines(events) {
        for secret in secretTexts { #expect(!line.contains(secret), "\(secret) leaked") }
    }
}

@Test func authOtherMechanisms() {
    let xoauth = Base64.encode(Array("user=carol@example.com\u{1}auth=Bearer tok\u{1}\u{1}".utf8))
    let cram = Base64.encode(Array("dave 0123456789abcdef".utf8))
    let events = runSMTP([greeting] + ehlo + [
        .client("AUTH XOAUTH2 \(xoauth)\r\n"), .server("235 ok\r\n"),
        .client("AUTH CRAM-MD5\r\n"), .server("334 PDEyMzQ1QGV4YW1wbGU+\r\n"),
        .client("\(cram)\r\n"), .server("235 ok\r\n"),
        .client("AUTH PLAIN\r\n"), .server("334 \r\n"),
        .client("*\r\n"), .server("501 5.7.0 cancelled\r\n"),
    ] + quit)
    let auths = events.filter { $0.command == "AUTH" }
    #expect(auths.map { $0.string("user.name") } == ["carol@example.com", "dave", nil])
    #expect(auths.map(\.code) == [235, 235, 501])
    #expect(!jsonLines(events).joined().contains("tok"))
}

let starttlsSession: [Step] = [greeting] + ehlo + [
    .client("STARTTLS\r\n"),
    .server("220 2.0.0 Ready to start TLS\r\n"),
    .clientBytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x0d, 0x0a] + Array("QUIT\r\nMAIL FROM:<x@y>\r\n".utf8)),
    .serverBytes([0x16, 0x03, 0x03, 0x00, 0x5d, 0x02] + Array("\r\n250 ok\r\n221 bye\r\n".utf8)),
    .clientBytes(Array(repeating: 0x41, count: 20_000)),
    .fin(.original), .fin(.reverse),
]

@Test func starttlsStopsParsing() {
    let events = runSMTP(starttlsSession)
    #expect(events.commands == ["EHLO", "STARTTLS"])
    #expect(events.count == 3)
    let tls = events[2]
    #expect(tls.code == 220)
    #expect(tls["smtp.starttls"] == .bool(true))
    #expect(tls.notes == nil)
}

@Test func starttlsRefusedCarriesOn() {
    let events = runSMTP([greeting] + ehlo + [
        .client("STARTTLS\r\n"), .server("454 4.7.0 TLS not available\r\n"),
        .client("NOOP\r\n"), .server("250 2.0.0 Ok\r\n"),
    ] + quit)
    #expect(events.commands == ["EHLO", "STARTTLS", "NOOP", "QUIT"])
    #expect(events[2]["smtp.starttls"] == nil)
    #expect(events[2].string("status") == "Error")
}

let pickupSession: [Step] = [
    .client("M:<alice@example.org> SIZE=10\r\n"),
    .server("0 2.1.0 Ok\r\n"),
    .client("RCPT TO:<bob@example.com>\r\n"),
    .server("250 2.1.5 Ok\r\n"),
    .client("DATA\r\n"),
    .server("354 go\r\n"),
    .client("Subject: picked up\r\n\r\nQUIT\r\nHelp me please\r\n.\r\n"),
    .server("250 queued\r\n"),
] + quit

@Test func midSessionPickup() {
    let events = runSMTP(pickupSession)
    #expect(events.ofType("PROMPT").isEmpty)
    #expect(events.commands == ["RCPT", "DATA", "QUIT"])
    let mail = events.ofType("MAIL")
    #expect(mail.count == 1)
    #expect(mail.first?.string("smtp.mail_from") == nil)
    #expect(mail.first?.strings("smtp.rcpt_to") == ["bob@example.com"])
    #expect(mail.first?.string("email.subject") == "picked up")
    #expect(mail.first?.notes == "MAIL command not seen")

    // Starting inside a reply and a message: only trusted lines are used.
    let late = runSMTP([
        .server("-SIZE 1000\r\n250 8BITMIME\r\n"),
        .client("ody text\r\nData follows\r\n.\r\nNOOP\r\n"),
        .server("250 queued\r\n250 ok\r\n"),
    ] + quit)
    #expect(late.commands == ["NOOP", "QUIT"])
    #expect(late.first?.code == 250)
    #expect(late.allSatisfy { $0.notes == nil })
}

@Test func addressForms() {
    let events = runSMTP([greeting] + ehlo + [
        .client("MAIL FROM: <exim@example.org> SIZE=123 BODY=8BITMIME\r\n"), .server("250 OK\r\n"),
        .client("RCPT TO:<@relay.example:x@example.com> NOTIFY=NEVER\r\n"), .server("250 Accepted\r\n"),
        .client("RCPT TO:y@example.com\r\n"), .server("250 Accepted\r\n"),
        .client("DATA\r\n"), .server("354 Enter message\r\n"),
        .client("To: undisclosed-recipients:;\r\nFrom: \"Q, R\" <q@example.org> (comment)\r\n\r\n.\r\n"),
        .server("250 OK id=1\r\n"),
        .client("MAIL FROM:<>\r\n"), .server("250 OK\r\n"),
        .client("RCPT TO:<postmaster@example.com>\r\n"), .server("250 Accepted\r\n"),
        .client("DATA\r\n"), .server("354 Enter message\r\n"),
        .client("\r\n.\r\n"), .server("250 OK id=2\r\n"),
    ] + quit)
    let mails = events.ofType("MAIL")
    #expect(mails.count == 2)
    #expect(mails[0].string("smtp.mail_from") == "exim@example.org")
    #expect(mails[0].strings("smtp.rcpt_to") == ["x@example.com", "y@example.com"])
    #expect(mails[0]["email.to.address"] == nil)
    #expect(mails[0].strings("email.from.address") == ["q@example.org"])
    #expect(mails[1].string("smtp.mail_from") == "")
    #expect(mails[1].int("smtp.data_bytes") == 2)
}

@Test func dotUnstuffingAndDataBytes() {
    let events = runSMTP([greeting] + ehlo + [
        .client("MAIL FROM:<a@example.org>\r\n"), .server("250 ok\r\n"),
        .client("RCPT TO:<b@example.com>\r\n"), .server("250 ok\r\n"),
        .client("DATA\r\n"), .server("354 go\r\n"),
        // Lines ".", "..x" and "." + CR inside a line; a bare-dot line only ends it at a line start.
        .client("Subject: dots\r\n\r\n..\r\n...x\r\nend.\r\n.\r.\r\n"),
        .client(".\r\n"),
        .server("250 queued\r\n"),
    ] + quit)
    let mail = events.ofType("MAIL")
    #expect(mail.count == 1)
    // "Subject: dots\r\n\r\n" 17 + ".\r\n" 3 + "..x\r\n" 5 + "end.\r\n" 6 + "\r.\r\n" 4
    #expect(mail.first?.int("smtp.data_bytes") == 35)
    #expect(mail.first?.notes == nil)
}

@Test func sendRequestAndResponse() {
    let config: [String: ConfigValue] = ["send_request": .scalar("true"), "send_response": .scalar("yes")]
    let events = runSMTP([greeting] + ehlo + quit, config: config)
    #expect(events[0].string("response") == "220 mail.example.com ESMTP Postfix\r\n")
    #expect(events[1].string("request") == "EHLO client.example.org\r\n")
    #expect(events[1].string("response")?.hasPrefix("250-mail.example.com\r\n250-PIPELINING\r\n") == true)
    let plain = runSMTP([greeting] + ehlo + quit)
    #expect(plain[1]["request"] == nil)
    #expect(plain[1]["response"] == nil)
}

@Test func configErrors() throws {
    #expect(throws: ConfigError.self) {
        _ = try SMTPPlugin(config: PluginConfig(pluginName: "smtp", values: ["send_request": .scalar("maybe")]))
    }
    #expect(throws: ConfigError.self) {
        _ = try SMTPPlugin(config: PluginConfig(pluginName: "smtp", values: ["max_line_length": .scalar("10")]))
    }
    let plugin = try SMTPPlugin(config: PluginConfig(pluginName: "smtp", values: ["transaction_timeout": .scalar("30s")]))
    #expect(plugin.connectionTimeout == .seconds(30))
    #expect(BuiltinPlugins.registry.names.contains("smtp"))
    #expect(SMTPPlugin.defaultPorts == [25, 587, 2525])
}

// MARK: - Loss, FIN, close

@Test func gapInMessageData() {
    let steps: [Step] = [greeting] + ehlo + [
        .client("MAIL FROM:<a@example.org>\r\n"), .server("250 ok\r\n"),
        .client("RCPT TO:<b@example.com>\r\n"), .server("250 ok\r\n"),
        .client("DATA\r\n"), .server("354 go\r\n"),
        .client("Subject: big\r\n\r\nline1\r\n"),
        .gap(.original, 100),
        .client("line3\r\n.\r\n"),
        .server("250 queued\r\n"),
    ] + quit
    let events = runSMTP(steps)
    let mail = events.ofType("MAIL")
    #expect(mail.count == 1)
    #expect(mail.first?.notes == "packet loss")
    #expect(mail.first?.code == 250)
    #expect(mail.first?.string("email.subject") == "big")
    #expect(events.last?.command == "QUIT")
    #expect(events.last?.notes == nil)
}

@Test func gapOnServerSide() {
    let events = runSMTP([greeting] + ehlo + [
        .client("MAIL FROM:<a@example.org>\r\n"),
        .lossy(.reverse, Array("250 2.1.0 Ok\r\n".utf8), lost: 2..<8),
        .client("RCPT TO:<b@example.com>\r\n"), .server("250 2.1.5 Ok\r\n"),
        .client("DATA\r\n"), .server("354 go\r\n"),
        .client("\r\nx\r\n.\r\n"), .server("250 queued\r\n"),
    ] + quit)
    #expect(events.commands == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"])
    let mailCommand = events.first { $0.command == "MAIL" }!
    #expect(mailCommand.notes == "packet loss")
    #expect(mailCommand.code == nil)
    #expect(events.first { $0.command == "RCPT" }?.code == 250)
    let mail = events.ofType("MAIL")
    #expect(mail.first?.notes == "packet loss")
    #expect(mail.first?.string("smtp.mail_from") == "a@example.org")
}

@Test func serverGapLosingTheDataReply() {
    let events = runSMTP([greeting] + ehlo + [
        .client("MAIL FROM:<a@example.org>\r\n"), .server("250 ok\r\n"),
        .client("RCPT TO:<b@example.com>\r\n"), .server("250 ok\r\n"),
        .client("DATA\r\n"), .gap(.reverse, 8),
        .client("Subject: lost reply\r\n\r\nx\r\n.\r\n"), .server("250 queued\r\n"),
    ] + quit)
    let mail = events.ofType("MAIL")
    #expect(mail.count == 1)
    #expect(mail.first?.string("email.subject") == "lost reply")
    #expect(mail.first?.notes?.contains("packet loss") == true)
    #expect(events.last?.command == "QUIT")
}

@Test func finWithPendingWork() {
    let events = runSMTP([greeting] + ehlo + [
        .client("MAIL FROM:<a@example.org>\r\n"), .server("250 ok\r\n"),
        .client("RCPT TO:<b@example.com>\r\n"), .server("250 ok\r\n"),
        .client("DATA\r\n"), .server("354 go\r\n"),
        .client("Subject: cut\r\n\r\npartial"),
        .fin(.original), .fin(.reverse),
    ])
    let aborted = events.ofType("ABORTED")
    #expect(aborted.count == 1)
    #expect(aborted.first?.notes == "connection closed before the mail transaction completed")
    #expect(aborted.first?.string("status") == "Error")
    #expect(aborted.first?.int("smtp.data_bytes") == 23)

    let noReply = runSMTP([greeting] + ehlo + [.client("NOOP\r\n"), .fin(.original), .fin(.reverse)])
    #expect(noReply.count == 3)
    #expect(noReply[2].command == "NOOP")
    #expect(noReply[2].notes == "no response")
    #expect(noReply[2].string("status") == "Error")
    #expect(noReply[2].code == nil)

    // Terminator sent, reply never seen (timeout): a MAIL event without a response.
    let timeout = runSMTP([greeting] + ehlo + [
        .client("MAIL FROM:<a@example.org>\r\n"), .server("250 ok\r\n"),
        .client("RCPT TO:<b@example.com>\r\n"), .server("250 ok\r\n"),
        .client("DATA\r\n"), .server("354 go\r\n"),
        .client("\r\nx\r\n.\r\n"),
    ], close: .timeout)
    let mail = timeout.ofType("MAIL")
    #expect(mail.count == 1)
    #expect(mail.first?.notes == "no response")
    #expect(mail.first?.code == nil)
}

@Test func normalEndHasNoNotes() {
    let events = runSMTP(plainSession, close: .closed)
    #expect(events.allSatisfy { $0.notes == nil })
    #expect(events.count == 8)
}

@Test func overlongLinesAreDiscarded() {
    let long = String(repeating: "x", count: 20_000)
    let events = runSMTP([greeting] + ehlo + [
        .client("NOOP \(long)\r\n"), .server("500 5.5.2 line too long\r\n"),
        .client("NOOP\r\n"), .server("250 ok\r\n"),
        .clientBytes(Array(repeating: 0x42, count: 50_000)),
    ] + quit)
    // The garbage without LF runs into "QUIT\r\n": one overlong line, answered by the 221.
    #expect(events.commands == ["EHLO", "NOOP", "NOOP", String(repeating: "B", count: 64)])
    #expect(events[2].notes == "command line too long")
    #expect(events[2].code == 500)
    #expect(events[3].code == 250)
    #expect(events[3].notes == nil)
    #expect(events[4].notes == "command line too long")
    #expect(events[4].code == 221)
    #expect(events[4].int("source.bytes") == 50_006)
}
