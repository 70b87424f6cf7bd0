import NIOCore
import PostgresWire
import SQLInspection

/// Drives a `StatementTracker` with arbitrary messages both ways, for the fuzz target and a seeded test:
/// it must never trap, never answer a server error with a refusal it was not given, and keep giving
/// candidates for every name.
@_spi(Fuzzing) public enum StatementTrackerFuzz {
    static let texts = [
        "select 1", "prepare a as select 1", "deallocate a", "deallocate all", "declare b cursor for select 1",
        "close b", "discard all", "execute a", "begin", "copy t from stdin",
    ]
    static let tags = [
        "PREPARE", "DEALLOCATE", "DEALLOCATE ALL", "DECLARE CURSOR", "CLOSE CURSOR", "DISCARD ALL", "SELECT 1", "COPY 1",
    ]

    /// Reads `bytes` as a sequence of messages; returns how many it applied before the tracker lost
    /// track (which ends a session) or the bytes ran out.
    @discardableResult
    public static func run(_ bytes: some Collection<UInt8>) -> Int {
        let marker = "gatehouse_refused_fuzz"
        var tracker = StatementTracker(marker: marker)
        var refusalsSent = 0
        var replaced = 0
        var applied = 0
        var input = bytes.makeIterator()
        var number = 0
        while let byte = input.next() {
            let extra = input.next() ?? 0
            let name = [[], [UInt8(ascii: "a")], [UInt8(ascii: "b")]][Int(extra) % 3]
            let nameText = String(decoding: name, as: UTF8.self)
            let sql = texts[Int(extra >> 2) % texts.count]
            number += 1
            let entry = StatementTracker.Entry(id: number, sql: sql, inspection: Inspector.inspect(sql), cycle: tracker.cycle)
            let refusal = ErrorNoticeFields(severity: "ERROR", sqlState: "42501", message: "refused \(number)")
            var answer = StatementTracker.Answer.pass
            func client(_ type: UInt8, _ body: [UInt8]) {
                tracker.sent(PostgresFrame(type: type, body: ByteBuffer(bytes: body)))
            }
            func server(_ type: UInt8, _ body: [UInt8] = []) {
                answer = tracker.received(type, ByteBuffer(bytes: body))
            }
            let cName = name + [0]
            // Mostly the answer the server would give; now and then any frame, which may lose track.
            let pick = Int(byte % 24)
            switch pick >= 14 && extra < 0xF0 ? 8 : pick {
            case 0: tracker.sent(ParseMessage(name: nameText, sql: sql).frame, entry: entry)
            case 1:
                tracker.sent(ParseMessage(name: nameText, sql: marker).frame, refusal: refusal)
                refusalsSent += 1
            case 2: client(FrontendMessageType.bind, cName + cName + [0, 0, 0, 0, 0, 0])
            case 3: client(FrontendMessageType.execute, cName + [0, 0, 0, 0])
            case 4: client(FrontendMessageType.close, [UInt8(ascii: "S")] + cName)
            case 5: client(FrontendMessageType.close, [UInt8(ascii: "P")] + cName)
            case 6: client(FrontendMessageType.describe, [UInt8(ascii: "P")] + cName)
            case 7: client(FrontendMessageType.sync, [])
            case 8:
                // The answer the server gives to the oldest message outstanding, so walks go deep.
                switch tracker.pending.first?.message {
                case .parse?: server(UInt8(ascii: "1"))
                case .bind?: server(UInt8(ascii: "2"))
                case .close?: server(UInt8(ascii: "3"))
                case .describe?: server(UInt8(ascii: "n"))
                case .execute?: server(UInt8(ascii: "C"), Array("SELECT 1".utf8) + [0])
                case .query(let entry?, let done)? where done < entry.inspection.statements.count:
                    server(UInt8(ascii: "C"), Array(tags[Int(extra) % tags.count].utf8) + [0])
                case .sync?, .query?: server(MessageType.readyForQuery, [UInt8(ascii: "I")])
                case .silent?, nil: client(FrontendMessageType.sync, [])
                }
            case 9: tracker.sent(QueryMessage(sql: sql).frame, entry: entry)
            case 10:
                tracker.sent(QueryMessage(sql: marker).frame, refusal: refusal)
                refusalsSent += 1
            case 11: client(FrontendMessageType.flush, [])
            case 12: client(FrontendMessageType.copyData, [0x31])
            case 13: client(FrontendMessageType.copyDone, [])
            case 14: server(UInt8(ascii: "1"))
            case 15: server(UInt8(ascii: "2"))
            case 16: server(UInt8(ascii: "3"))
            case 17:
                server([UInt8(ascii: "T"), UInt8(ascii: "n"), UInt8(ascii: "t"), UInt8(ascii: "D")][Int(extra) % 4], [0, 0])
            case 18: server(UInt8(ascii: "C"), Array(tags[Int(extra) % tags.count].utf8) + [0])
            case 19: server([UInt8(ascii: "I"), UInt8(ascii: "s"), UInt8(ascii: "G")][Int(extra) % 3], [0, 0, 0])
            case 20:
                let text = extra % 2 == 0 ? "syntax error at or near \"\(marker)\"" : "duplicate"
                server(
                    MessageType.errorResponse,
                    Array(
                        ErrorNoticeFields(severity: "ERROR", sqlState: "42601", message: text).errorFrame.body.readableBytesView))
            case 21, 22:
                server(MessageType.readyForQuery, [[UInt8(ascii: "I"), UInt8(ascii: "T"), UInt8(ascii: "E")][Int(extra) % 3]])
            default: server(MessageType.noticeResponse, [0])
            }
            switch answer {
            case .lost: return applied
            case .replace: replaced += 1
            case .pass: break
            }
            precondition(replaced <= refusalsSent, "a server error was answered with a refusal never sent")
            for name in [[], [UInt8(ascii: "a")], [UInt8(ascii: "b")]] as [[UInt8]] {
                _ = tracker.statementCandidates(name)
                _ = tracker.portalCandidates(name)
                _ = tracker.isFirstRunOfThisCycle(name)
            }
            applied += 1
        }
        return applied
    }
}
