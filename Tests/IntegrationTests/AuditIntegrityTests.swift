import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

@Suite("The audit cannot be poisoned", .timeLimit(.minutes(3)))
struct AuditIntegrityTests {
    @Test("a user name with U+0000 is refused at the door, in the API and at startup; audit verify stays right")
    func nulNames() async throws {
        let gateway = try await Gateway.start()
        for name in ["alice\u{0}admin", "bob\u{1B}[31m", "\u{0}"] {
            var request = HTTPClientRequest(url: "\(gateway.server)/api/v1/login")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            let body = try JSONSerialization.data(withJSONObject: ["user": name, "password": "x"])
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            #expect(response.status == .badRequest, "\(name.debugDescription): \(response.status)")
            let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            #expect(text.contains("control characters"), "\(text)")
        }
        #expect(throws: RawClient.StartupRefused.self) {
            _ = try RawClient(
                port: gateway.postgresPort, parameters: [("user", "ali\u{7}ce"), ("database", "main")], password: "x")
        }
        try await gateway.loginAdmin()
        let verify = try await gateway.cli("admin", ["audit", "verify"])
        #expect(verify.status == 0, "\(verify)")
        #expect(!verify.stdout.contains("does not match"), "\(verify)")
    }

    @Test("every decision records the statement's text, masked when configured; a refused FunctionCall is an event")
    func statementText() async throws {
        for masked in [false, true] {
            let gateway = try await Gateway.start(extraConfig: masked ? "audit: {statement_text: masked}\n" : "")
            let token = try await gateway.aliceToken()
            let raw = try RawClient(
                port: gateway.postgresPort, parameters: [("user", "alice"), ("database", "main")], password: token)
            #expect(try raw.query("SELECT 'secret-4111' AS card, 42").error == nil)
            let call = try raw.functionCall(oid: 2171)  // pg_cancel_backend
            #expect(call.error?["C"] == "42501", "\(String(describing: call.error))")
            #expect(try raw.query("SELECT 'after'").rows == [["after"]])
            try await gateway.loginAdmin()
            let allowed = try await gateway.cli("admin", ["audit", "tail", "--type", "statement.allowed", "--json"])
            if masked {
                #expect(allowed.stdout.contains("SELECT $1 AS card, $2"), "\(allowed)")
                #expect(!allowed.stdout.contains("secret-4111"), "\(allowed)")
            } else {
                #expect(allowed.stdout.contains("SELECT 'secret-4111' AS card, 42"), "\(allowed)")
            }
            let denied = try await gateway.cli("admin", ["audit", "tail", "--type", "statement.denied", "--json"])
            #expect(denied.stdout.contains("FunctionCall of function 2171"), "\(denied)")
        }
    }
}
