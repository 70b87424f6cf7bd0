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
}
