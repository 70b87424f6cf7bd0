import NIOCore
import PostgresWire

/// Reads what a client sends in an established session, and makes the frames that refuse it.
///
/// A refused statement is not dropped: its message is replaced by one the upstream server rejects at
/// once (a syntax error naming this session's marker). The server then behaves as PostgreSQL does after
/// any error (it discards the rest of an extended-protocol batch until Sync, aborts the implicit
/// transaction, and reports the transaction status in ReadyForQuery), and the `StatementTracker` swaps
/// the server's syntax error for the refusal the client should read. So pipelining, transaction state
/// and the session's usability stay exactly PostgreSQL's.
///
/// Pure: frames in, frames out. The caller supplies the judgement.
struct StatementGuard: Sendable {
    /// What the caller decided about a statement text or an execution.
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
        /// An Execute of this portal: judge what it runs, and give the verdict with `decided(_:_:)`.
        case execute(portal: [UInt8])
        /// Refused before any judgement (text that is not UTF-8, a FunctionCall): send this frame instead,
        /// answer the server's error with `refusal`, and audit the refusal of `what`.
        case refuseUnjudged(PostgresFrame, refusal: ErrorNoticeFields, what: String)
        /// Not allowed in a session at all: end the connection.
        case protocolViolation(String)
    }

    /// A syntax error in the server's eyes; unguessable, so a client cannot provoke a rewrite itself.
    let marker: String

    init(marker: String) {
        self.marker = marker
    }

    func arrived(_ frame: PostgresFrame) -> Arrival {
        switch frame.type {
        case FrontendMessageType.query:
            do {
                return .statement(try QueryMessage.decode(frame.body).sql)
            } catch let error as PostgresWireError where error.code == .invalidTextEncoding {
                return .refuseUnjudged(
                    QueryMessage(sql: marker).frame, refusal: ClientMessage.unreadableText(error.description).fields,
                    what: "(text that is not UTF-8)")
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
                return .refuseUnjudged(
                    ParseMessage(name: name, sql: marker).frame,
                    refusal: ClientMessage.unreadableText(error.description).fields, what: "(text that is not UTF-8)")
            } catch {
                return .protocolViolation("malformed Parse message")
            }
        case FrontendMessageType.execute:
            let body = frame.body.readableBytesView
            guard let end = body.firstIndex(of: 0), body.count >= end - body.startIndex + 5 else {
                return .protocolViolation("malformed Execute message")
            }
            return .execute(portal: Array(body[..<end]))
        case FrontendMessageType.functionCall:
            // A direct call of a function by OID bypasses SQL entirely: never passed blind.
            var body = frame.body
            let oid = body.readInteger(as: UInt32.self).map(String.init) ?? "?"
            return .refuseUnjudged(
                QueryMessage(sql: marker).frame, refusal: ClientMessage.functionCallRefused.fields,
                what: "(FunctionCall of function \(oid))")
        case FrontendMessageType.sync, FrontendMessageType.bind, FrontendMessageType.describe,
            FrontendMessageType.close, FrontendMessageType.flush, FrontendMessageType.copyData,
            FrontendMessageType.copyDone, FrontendMessageType.copyFail, FrontendMessageType.terminate:
            return .forward
        default:
            return .protocolViolation("unexpected message type '\(frame.typeName)' in a session")
        }
    }

    /// The frame to send for a statement or execution `arrived` asked to judge: itself, or the refusal
    /// marker in its place.
    func decided(_ frame: PostgresFrame, _ verdict: Verdict) -> PostgresFrame {
        guard case .refuse = verdict else { return frame }
        switch frame.type {
        case FrontendMessageType.query:
            return QueryMessage(sql: marker).frame
        case FrontendMessageType.execute:
            // A Parse the server rejects stands in for the Execute; named, so that the session's unnamed
            // statement (which a failed unnamed Parse would drop) stays.
            return ParseMessage(name: marker, sql: marker).frame
        default:
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
}
