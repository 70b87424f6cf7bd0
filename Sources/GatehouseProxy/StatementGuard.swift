import NIOCore
import PostgresWire

/// Judges what a client sends in an established session and keeps the protocol exact when it refuses.
///
/// A refused statement is not dropped: its message is replaced by one the upstream server rejects at
/// once (a syntax error naming this session's marker). The server then behaves as PostgreSQL does after
/// any error (it discards the rest of an extended-protocol batch until Sync, aborts the implicit
/// transaction, and reports the transaction status in ReadyForQuery), and the guard swaps the server's
/// syntax error for the refusal the client should read. So pipelining, transaction state and the
/// session's usability stay exactly PostgreSQL's.
///
/// Pure: frames in, frames out. The caller supplies the judgement.
struct StatementGuard: Sendable {
    /// What the caller decided about a statement text.
    enum Verdict: Equatable {
        case proceed
        case refuse(ErrorNoticeFields)
    }

    /// What a frame of the client is.
    enum Arrival: Equatable {
        /// Send the frame on unchanged.
        case forward
        /// A statement text to judge: give the verdict with `decided(_:_:)`, now or after a hold.
        case statement(String)
        /// Refused before any judgement (text that is not UTF-8, a FunctionCall): send this frame instead,
        /// and audit the refusal of `what`.
        case refuseUnjudged(PostgresFrame, reason: String, what: String)
        /// Not allowed in a session at all: end the connection.
        case protocolViolation(String)
    }

    /// A syntax error in the server's eyes; unguessable, so a client cannot provoke a rewrite itself.
    let marker: String
    private var refusals: [(cycle: Int, error: ErrorNoticeFields)] = []
    /// Cycles (Query, FunctionCall or Sync) sent upstream, and ReadyForQuery messages received back.
    private var cyclesSent = 0
    private var cyclesDone = 0

    init(marker: String) {
        self.marker = marker
    }

    /// Whether refusals are waiting for the server's answer.
    var hasPendingRefusals: Bool { !refusals.isEmpty }

    mutating func arrived(_ frame: PostgresFrame) -> Arrival {
        switch frame.type {
        case FrontendMessageType.query:
            do {
                return .statement(try QueryMessage.decode(frame.body).sql)
            } catch let error as PostgresWireError where error.code == .invalidTextEncoding {
                refusals.append((cyclesSent, ClientMessage.unreadableText(error.description).fields))
                cyclesSent += 1
                return .refuseUnjudged(
                    QueryMessage(sql: marker).frame, reason: error.description, what: "(text that is not UTF-8)")
            } catch {
                return .protocolViolation("malformed Query message")
            }
        case FrontendMessageType.parse:
            do {
                return .statement(try ParseMessage.decode(frame.body).sql)
            } catch let error as PostgresWireError where error.code == .invalidTextEncoding {
                // The statement's name must be readable to answer in its place.
                var body = frame.body
                guard let name = try? body.readValidatedString() else {
                    return .protocolViolation("a Parse message's statement name is not UTF-8")
                }
                refusals.append((cyclesSent, ClientMessage.unreadableText(error.description).fields))
                return .refuseUnjudged(
                    ParseMessage(name: name, sql: marker).frame, reason: error.description, what: "(text that is not UTF-8)")
            } catch {
                return .protocolViolation("malformed Parse message")
            }
        case FrontendMessageType.functionCall:
            // A direct call of a function by OID bypasses SQL entirely: never passed blind.
            var body = frame.body
            let oid = body.readInteger(as: UInt32.self).map(String.init) ?? "?"
            let refusal = ClientMessage.functionCallRefused.fields
            refusals.append((cyclesSent, refusal))
            cyclesSent += 1
            return .refuseUnjudged(
                QueryMessage(sql: marker).frame, reason: refusal.message ?? "", what: "(FunctionCall of function \(oid))")
        case FrontendMessageType.sync:
            cyclesSent += 1
            return .forward
        case FrontendMessageType.bind, FrontendMessageType.describe, FrontendMessageType.execute,
            FrontendMessageType.close, FrontendMessageType.flush, FrontendMessageType.copyData,
            FrontendMessageType.copyDone, FrontendMessageType.copyFail, FrontendMessageType.terminate:
            return .forward
        default:
            return .protocolViolation("unexpected message type '\(frame.typeName)' in a session")
        }
    }

    /// The frame to send for a statement `arrived` asked to judge: itself, or the refusal marker in its
    /// place (the refusal is what the client reads when the server rejects the marker).
    mutating func decided(_ frame: PostgresFrame, _ verdict: Verdict) -> PostgresFrame {
        let isQuery = frame.type == FrontendMessageType.query
        switch verdict {
        case .proceed:
            if isQuery { cyclesSent += 1 }
            return frame
        case .refuse(let error):
            refusals.append((cyclesSent, error))
            if isQuery {
                cyclesSent += 1
                return QueryMessage(sql: marker).frame
            }
            // `arrived` read this Parse message: its name is readable.
            var body = frame.body
            let name = (try? body.readValidatedString()) ?? ""
            return ParseMessage(name: name, sql: marker).frame
        }
    }

    /// Why a setting the server reports breaks the session's pins (UTF8, standard-conforming strings):
    /// after that the server would read SQL text otherwise than the gateway's checks, so the session
    /// must end. nil for any other frame.
    static func pinViolation(_ frame: PostgresFrame) -> String? {
        guard frame.type == MessageType.parameterStatus else { return nil }
        guard let status = try? ParameterStatus.decode(frame.body) else {
            return "the server sent a malformed ParameterStatus message"
        }
        switch status.name.lowercased() {
        case "client_encoding" where status.value != "UTF8":
            return "the server reports client_encoding \(status.value), and Gatehouse sessions must stay in UTF8"
        case "standard_conforming_strings" where status.value != "on":
            return "the server reports standard_conforming_strings \(status.value), and Gatehouse sessions must keep it on"
        default:
            return nil
        }
    }

    /// The frame to give the client for a frame from the server.
    mutating func upstream(_ frame: PostgresFrame) -> PostgresFrame {
        if frame.type == MessageType.readyForQuery {
            cyclesDone += 1
            // Refusals of finished cycles that the server never reached (it was already discarding
            // after an earlier error) have nothing left to answer.
            if !refusals.isEmpty { refusals.removeAll { $0.cycle < cyclesDone } }
            return frame
        }
        guard !refusals.isEmpty else { return frame }
        switch frame.type {
        case MessageType.errorResponse:
            let fields = ErrorNoticeFields.decode(frame.body)
            if let message = fields.message, message.contains(marker) {
                // The first refusal of the current cycle is the one the server just rejected.
                if let index = refusals.firstIndex(where: { $0.cycle >= cyclesDone }) {
                    let refusal = refusals.remove(at: index)
                    return refusal.error.errorFrame
                }
            }
            return frame
        default:
            return frame
        }
    }
}
