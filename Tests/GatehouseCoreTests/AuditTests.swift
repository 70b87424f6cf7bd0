import Foundation
import GatehouseCore
import Testing

/// Builds a sealed chain of `count` events, each linked to the one before.
func makeChain(_ count: Int, start: Date = Date(timeIntervalSince1970: 1_700_000_000)) -> [AuditEvent] {
    var events: [AuditEvent] = []
    var previous = AuditEvent.genesisHash
    for index in 0..<count {
        let record = AuditRecord(
            index.isMultiple(of: 2) ? .loginSuccess : .tokenIssued, actor: "user\(index)", session: "s\(index)",
            connection: "app", source: "10.0.0.\(index)", detail: ["n": "\(index)", "path": "a/b"])
        let event = AuditEvent.seal(
            record, seq: Int64(index + 1), time: start.addingTimeInterval(Double(index)), prevHash: previous)
        events.append(event)
        previous = event.hash
    }
    return events
}

/// Runs the streaming verifier over `events` one at a time.
func streamVerify(_ events: [AuditEvent], fromGenesis: Bool = true) -> AuditChainReport {
    var verifier = AuditChain.Verifier(fromGenesis: fromGenesis)
    for event in events { verifier.add(event) }
    return verifier.report
}

@Suite("Audit chain")
struct AuditChainTests {
    @Test func sealedEventCarriesTheRecordAndALink() {
        let time = Date(timeIntervalSince1970: 1_700_000_000.25)
        let record = AuditRecord(
            .sessionStart, actor: "alice", session: "abc", connection: "app", source: "127.0.0.1", detail: ["k": "v"])
        let event = AuditEvent.seal(record, seq: 7, time: time, prevHash: AuditEvent.genesisHash)
        #expect(event.seq == 7)
        #expect(event.time == Timestamp.format(time))
        #expect(event.type == "session.start")
        #expect(event.actor == "alice")
        #expect(event.session == "abc")
        #expect(event.connection == "app")
        #expect(event.source == "127.0.0.1")
        #expect(event.detail == ["k": "v"])
        #expect(event.prevHash == AuditEvent.genesisHash)
        #expect(event.hash == event.computedHash())
        #expect(event.hash.count == 64)
        #expect(event.hash.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func genesisHashIsSixtyFourZeros() {
        #expect(AuditEvent.genesisHash == String(repeating: "0", count: 64))
    }

    @Test func hashIsPinnedToTheCanonicalForm() {
        // SHA-256 of prev_hash followed by the sorted-key compact JSON of the event with an empty
        // hash, computed independently with Python (json.dumps(sort_keys=True, separators=(',', ':'))).
        let event = AuditEvent(
            seq: 1, time: "2024-01-02T03:04:05.678Z", type: "login.success", actor: "alice", session: nil,
            connection: nil, source: "10.0.0.1", detail: ["token_id": "abc", "expires_at": "x/y"],
            prevHash: AuditEvent.genesisHash, hash: "")
        #expect(event.computedHash() == "45a1d1aff54dca355d54f52952dc9834e4efaf7dc3caf2d12657ba75cfd49e34")
    }

    @Test func hashCoversThePreviousLink() {
        let record = AuditRecord(.gatewayStart, actor: "gatehouse")
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        let a = AuditEvent.seal(record, seq: 2, time: time, prevHash: String(repeating: "a", count: 64))
        let b = AuditEvent.seal(record, seq: 2, time: time, prevHash: String(repeating: "b", count: 64))
        #expect(a.hash != b.hash)
    }

    @Test func intactChainVerifies() {
        let events = makeChain(6)
        let report = AuditChain.verify(events)
        #expect(report.isIntact)
        #expect(report.problems.isEmpty)
        #expect(report.eventsChecked == 6)
        #expect(report.firstSeq == 1)
        #expect(report.lastSeq == 6)
        #expect(report.lastHash == events.last?.hash)
        #expect(streamVerify(events) == report)
    }

    @Test func emptyChainIsIntact() {
        let report = AuditChain.verify([AuditEvent]())
        #expect(report.isIntact)
        #expect(report.eventsChecked == 0)
        #expect(report.firstSeq == nil)
        #expect(report.lastSeq == nil)
        #expect(report.lastHash == nil)
    }

    @Test func editedActorIsDetected() {
        var events = makeChain(5)
        events[2].actor = "mallory"
        let report = AuditChain.verify(events)
        #expect(!report.isIntact)
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.seq == 3)
        #expect(report.problems.first?.reason.contains("edited") == true)
        #expect(streamVerify(events) == report)
    }

    @Test func removedActorIsDetected() {
        var events = makeChain(5)
        events[1].actor = nil
        let report = AuditChain.verify(events)
        #expect(report.problems.map(\.seq) == [2])
    }

    @Test func editedDetailValueIsDetected() {
        var events = makeChain(5)
        events[3].detail["n"] = "999"
        let report = AuditChain.verify(events)
        #expect(report.problems.map(\.seq) == [4])
        #expect(report.problems.first?.reason.contains("edited") == true)
        #expect(streamVerify(events) == report)
    }

    @Test func addedDetailKeyIsDetected() {
        var events = makeChain(5)
        events[0].detail["extra"] = "1"
        #expect(AuditChain.verify(events).problems.map(\.seq) == [1])
    }

    @Test func editedTimeIsDetected() {
        var events = makeChain(5)
        events[4].time = Timestamp.format(Date(timeIntervalSince1970: 1_600_000_000))
        let report = AuditChain.verify(events)
        #expect(report.problems.map(\.seq) == [5])
        #expect(streamVerify(events) == report)
    }

    @Test func editedTypeIsDetected() {
        var events = makeChain(5)
        events[2].type = AuditEventType.loginFailure.rawValue
        #expect(AuditChain.verify(events).problems.map(\.seq) == [3])
    }

    @Test func deletedMiddleEventIsDetected() {
        var events = makeChain(5)
        events.remove(at: 2)  // seq 3
        let report = AuditChain.verify(events)
        #expect(!report.isIntact)
        #expect(report.eventsChecked == 4)
        #expect(report.problems.allSatisfy { $0.seq == 4 })
        #expect(report.problems.contains { $0.reason.contains("expected event 3 after 2") })
        #expect(report.problems.contains { $0.reason.contains("link") })
        #expect(streamVerify(events) == report)
    }

    @Test func deletedFirstEventIsDetectedFromGenesis() {
        let events = Array(makeChain(4).dropFirst())
        let report = AuditChain.verify(events)
        #expect(report.problems.map(\.seq) == [2, 2])
        #expect(report.problems.contains { $0.reason.contains("starts at 2") })
        #expect(report.problems.contains { $0.reason.contains("genesis") })
        #expect(streamVerify(events) == report)
    }

    @Test func rangeExportVerifiesWithoutGenesis() {
        let events = Array(makeChain(6)[2...])
        let report = AuditChain.verify(events, fromGenesis: false)
        #expect(report.isIntact)
        #expect(report.firstSeq == 3)
        #expect(report.lastSeq == 6)
        #expect(streamVerify(events, fromGenesis: false) == report)
        // Inner links are still checked in a range.
        var tampered = events
        tampered[1].actor = "mallory"
        #expect(AuditChain.verify(tampered, fromGenesis: false).problems.map(\.seq) == [4])
    }

    @Test func deletedLastEventIsNotVisibleInTheChainAlone() {
        // Truncation at the end leaves a valid prefix; the report's lastSeq and lastHash are what a
        // reader compares with an earlier anchor.
        let events = makeChain(5)
        let report = AuditChain.verify(events.dropLast())
        #expect(report.isIntact)
        #expect(report.lastSeq == 4)
        #expect(report.lastHash == events[3].hash)
    }

    @Test func reorderedEventsAreDetected() {
        var events = makeChain(5)
        events.swapAt(1, 2)  // seq 1, 3, 2, 4, 5
        let report = AuditChain.verify(events)
        #expect(!report.isIntact)
        let seqs = Set(report.problems.map(\.seq))
        #expect(seqs == [3, 2, 4])
        #expect(report.problems.contains { $0.seq == 3 && $0.reason.contains("missing") })
        #expect(report.problems.contains { $0.seq == 2 && $0.reason.contains("link") })
        #expect(report.problems.contains { $0.seq == 4 && $0.reason.contains("link") })
        // No content was edited.
        #expect(!report.problems.contains { $0.reason.contains("edited") })
        #expect(streamVerify(events) == report)
    }

    @Test func renumberedReorderIsDetected() {
        // Swap two events and give them each other's sequence numbers: the numbers look right but
        // the hashes no longer do.
        var events = makeChain(5)
        events.swapAt(1, 2)
        events[1].seq = 2
        events[2].seq = 3
        let report = AuditChain.verify(events)
        #expect(!report.isIntact)
        #expect(report.problems.contains { $0.seq == 2 && $0.reason.contains("edited") })
        #expect(report.problems.contains { $0.seq == 3 && $0.reason.contains("edited") })
    }

    @Test func brokenPrevHashIsDetected() {
        var events = makeChain(5)
        events[3].prevHash = String(repeating: "f", count: 64)
        let report = AuditChain.verify(events)
        #expect(report.problems.contains { $0.seq == 4 && $0.reason == "link to the previous event is broken" })
        // prev_hash is part of the sealed content, so the event's own hash no longer matches either.
        #expect(report.problems.contains { $0.seq == 4 && $0.reason.contains("edited") })
        #expect(report.problems.allSatisfy { $0.seq == 4 })
        #expect(streamVerify(events) == report)
    }

    @Test func brokenPrevHashResealedIsStillALinkBreak() {
        // An attacker who reseals the event after changing prev_hash fixes its own hash, but the link
        // to its predecessor and the next event's link both break.
        var events = makeChain(5)
        events[3].prevHash = String(repeating: "f", count: 64)
        events[3].hash = events[3].computedHash()
        let report = AuditChain.verify(events)
        #expect(report.problems.map(\.seq) == [4, 5])
        #expect(report.problems.allSatisfy { $0.reason == "link to the previous event is broken" })
    }

    @Test func recomputedHashWithoutFixingTheNextLinkIsDetected() {
        var events = makeChain(5)
        events[2].actor = "mallory"
        events[2].hash = events[2].computedHash()
        let report = AuditChain.verify(events)
        #expect(report.problems.map(\.seq) == [4])
        #expect(report.problems.map(\.reason) == ["link to the previous event is broken"])
        #expect(streamVerify(events) == report)
    }

    @Test func fullyResealedSuffixIsInternallyConsistent() {
        // The chain alone cannot detect a rewrite of every later event: the last hash changes, which
        // is what an external anchor catches. Pin that the report exposes the new last hash.
        var events = makeChain(4)
        let original = events.last!.hash
        events[1].actor = "mallory"
        for index in 1..<events.count {
            if index > 1 { events[index].prevHash = events[index - 1].hash }
            events[index].hash = events[index].computedHash()
        }
        let report = AuditChain.verify(events)
        #expect(report.isIntact)
        #expect(report.lastHash != original)
    }

    @Test func firstEventMustLinkToGenesis() {
        let record = AuditRecord(.gatewayStart)
        let event = AuditEvent.seal(
            record, seq: 1, time: Date(timeIntervalSince1970: 0), prevHash: String(repeating: "1", count: 64))
        let report = AuditChain.verify([event])
        #expect(report.problems.map(\.seq) == [1])
        #expect(report.problems.map(\.reason) == ["first event does not link to the genesis hash"])
        #expect(AuditChain.verify([event], fromGenesis: false).isIntact)
    }

    @Test func streamingVerifierReportsAsItGoes() {
        let events = makeChain(3)
        var verifier = AuditChain.Verifier()
        verifier.add(events[0])
        #expect(verifier.report.eventsChecked == 1)
        #expect(verifier.report.lastSeq == 1)
        #expect(verifier.report.isIntact)
        var edited = events[1]
        edited.source = "203.0.113.9"
        verifier.add(edited)
        #expect(verifier.report.problems.map(\.seq) == [2])
        verifier.add(events[2])
        #expect(verifier.report.eventsChecked == 3)
        #expect(verifier.report.problems.map(\.seq) == [2], "event 3 still links to the original hash of 2")
    }

    @Test func jsonUsesSnakeCasePrevHash() throws {
        let event = makeChain(2)[1]
        let line = event.jsonLine()
        #expect(line.contains("\"prev_hash\":\"\(event.prevHash)\""))
        #expect(!line.contains("prevHash"))
        #expect(line.contains("\"hash\":\"\(event.hash)\""))
        #expect(line.contains("\"path\":\"a/b\""), "slashes are not escaped")
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "seq", "time", "type", "actor", "session", "connection", "source", "detail", "prev_hash", "hash",
            ])
        let decoded = try JSONDecoder().decode(AuditEvent.self, from: Data(line.utf8))
        #expect(decoded == event)
        #expect(AuditChain.verify([makeChain(2)[0], decoded]).isIntact)
    }

    @Test func jsonOmitsAbsentFields() throws {
        let event = AuditEvent.seal(
            AuditRecord(.gatewayStop), seq: 1, time: Date(timeIntervalSince1970: 0), prevHash: AuditEvent.genesisHash)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(event.jsonLine().utf8)) as? [String: Any])
        #expect(object["actor"] == nil)
        #expect(object["prev_hash"] as? String == AuditEvent.genesisHash)
        let decoded = try JSONDecoder().decode(AuditEvent.self, from: Data(event.jsonLine().utf8))
        #expect(decoded == event)
    }

    @Test func eventTypeNamesAreStable() {
        // Exports and alerting rules depend on these names.
        #expect(AuditEventType.loginFailure.rawValue == "login.failure")
        #expect(AuditEventType.authFailure.rawValue == "auth.failure")
        #expect(AuditEventType.sessionTerminated.rawValue == "session.terminated")
        #expect(AuditEventType.cancelRequest.rawValue == "session.cancel")
        #expect(AuditEventType.passwordSet.rawValue == "admin.password_set")
        #expect(Set(AuditEventType.allCases.map(\.rawValue)).count == AuditEventType.allCases.count)
    }
}

@Suite("Audit canonical form")
struct AuditCanonicalFormTests {
    @Test("the hand-written canonical JSON is byte for byte what JSONEncoder writes with sorted keys")
    func matchesJSONEncoder() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let awkward = [
            "plain", "", "quote \" backslash \\ slash /", "tab\tnew\nline\rcr", "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "héllo wörld ✓ 😀", "\u{2028}\u{2029}", "</script>", "é vs e\u{301}",
        ]
        for (index, text) in awkward.enumerated() {
            let event = AuditEvent(
                seq: Int64(index) * 1_000_003, time: "2026-11-27T01:02:03.456Z", type: "statement.allowed",
                actor: index.isMultiple(of: 2) ? text : nil, session: index.isMultiple(of: 3) ? nil : "s\(index)",
                connection: text.isEmpty ? nil : "c", source: "10.0.0.1",
                detail: ["statement": text, "a": "1", "Z": text, "facts": "select reads=t", "é": "x"],
                prevHash: AuditEvent.genesisHash, hash: "h\(index)")
            let expected = Array(try encoder.encode(event))
            #expect(event.canonicalJSON(withHash: true) == expected, "\(text.debugDescription)")
        }
    }
}

@Suite("Audit journal lines")
struct AuditJournalEntryTests {
    @Test("a line reads back as the record it was written from, whatever its text holds")
    func lineRoundTrips() throws {
        let hostile = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é ✓ 🚀 </script>"
        let entries = [
            AuditJournalEntry(
                number: 41, time: "2026-11-27T05:00:00.123Z",
                record: AuditRecord(
                    .statementDenied, actor: "alice", session: "s1", connection: "main", source: "10.0.0.1",
                    detail: ["statement": hostile, "reason": "rule \"no-ddl\"", hostile: "key too"])),
            AuditJournalEntry(
                number: 42, time: "2026-11-27T05:00:00.124Z", record: AuditRecord(.statementAllowed, detail: [:])),
        ]
        let bytes = entries.flatMap { $0.line() }
        #expect(bytes.filter { $0 == UInt8(ascii: "\n") }.count == 2, "one line per entry: newlines inside are escaped")
        let read = AuditJournalEntry.read(bytes)
        #expect(read.entries == entries)
        #expect(read.unreadable == 0)
    }

    @Test("the detail JSON a line holds seals an event exactly as the chain would make it")
    func lineDetailSealsTheSameEvent() throws {
        let hostile = "quote \" backslash \\ newline \n nul \u{0} é ✓ 🚀"
        for detail in [[:], ["a": "1"], ["statement": hostile, hostile: "x", "reason": "rule \"r\""]] {
            let record = AuditRecord(.statementAllowed, actor: "alice", session: "s", detail: detail)
            var line: [UInt8] = []
            let range = AuditJournalEntry(number: 1, time: "2026-11-27T05:00:00.000Z", record: record).write(to: &line)
            let detailJSON = Array(line[range])
            #expect(detailJSON == Array(AuditEvent.canonicalDetailJSON(record.detail).utf8))
            let sealed = AuditEvent.seal(
                record, seq: 4, time: "2026-11-27T05:00:00.000Z", prevHash: AuditEvent.genesisHash, detailJSON: detailJSON)
            let plain = AuditEvent.seal(record, seq: 4, time: "2026-11-27T05:00:00.000Z", prevHash: AuditEvent.genesisHash)
            #expect(sealed == plain)
            #expect(sealed.computedHash() == sealed.hash)
        }
    }

    @Test("a line cut short or naming an unknown event type is counted as unreadable, and the rest is read")
    func damagedLinesAreCounted() {
        let good = AuditJournalEntry(number: 7, time: "2026-11-27T05:00:00.000Z", record: AuditRecord(.sessionEnd))
        var bytes = Array(#"{"n":6,"time":"2026-11-27T05:00:00.000Z","type":"no.such","detail":{}}"#.utf8) + [10]
        bytes += good.line()
        bytes += Array(#"{"n":8,"time":"2026-11-27T05:0"#.utf8)
        let read = AuditJournalEntry.read(bytes)
        #expect(read.entries == [good])
        #expect(read.unreadable == 2)
    }
}

@Suite("Audit text kept byte for byte")
struct AuditTextTests {
    @Test("U+0000 in any field is stored as U+2400, so the event reads back as hashed")
    func nul() {
        let record = AuditRecord(
            .loginFailure, actor: "a\u{0}b", session: "s\u{0}", connection: "c", source: "\u{0}",
            detail: ["k\u{0}": "v\u{0}w"])
        #expect(record.actor == "a\u{2400}b" && record.session == "s\u{2400}" && record.source == "\u{2400}")
        #expect(record.detail == ["k\u{2400}": "v\u{2400}w"])
        #expect(AuditRecord(.loginFailure, actor: "plain").actor == "plain")
    }
}
