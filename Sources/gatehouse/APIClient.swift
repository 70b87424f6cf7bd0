import Foundation
import GatehouseHTTP

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A small JSON client for the gateway's HTTP API.
struct APIClient {
    var server: String
    var token: String?
    /// Whose stored login `token` is (nil for a service token or none): a refused login is then
    /// answered with how to sign in again.
    var storedLogin: String?

    /// A client authenticated with the stored login; fails with advice when there is none.
    static func loggedIn(server flag: String?) throws -> APIClient {
        // A service account's API token (CI jobs, agents) stands in for a stored login.
        if let token = ProcessInfo.processInfo.environment["GATEHOUSE_TOKEN"], !token.isEmpty {
            return APIClient(server: Credentials.server(flag), token: token)
        }
        guard let credentials = Credentials.load() else {
            throw CLIError("not logged in: run `gatehouse login --user NAME` first")
        }
        return APIClient(server: flag ?? credentials.server, token: credentials.token, storedLogin: credentials.user)
    }

    func send<Response: Decodable>(
        _ method: String, _ path: String, body: (some Encodable)? = Optional<String>.none, as: Response.Type
    ) async throws -> Response {
        let base = server.hasSuffix("/") ? String(server.dropLast()) : server
        guard let url = URL(string: base + "/api/v1/" + path) else { throw CLIError("invalid server address \(server)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = 30
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = try JSONEncoder().encode(body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw CLIError("cannot reach the gateway at \(server): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            if let problem = try? JSONDecoder().decode(APIErrorBody.self, from: data) {
                var advice = ""
                if problem.error.code == "unauthenticated", let user = storedLogin {
                    advice = "\nYour stored login no longer works: sign in again with `gatehouse login --user \(user)`."
                }
                throw CLIError("\(problem.error.message) (\(problem.error.code))\(advice)", code: problem.error.code)
            }
            throw CLIError("the gateway answered HTTP \(status)")
        }
        do {
            return try JSONDecoder().decode(Response.self, from: data)
        } catch {
            throw CLIError("the gateway's answer was not understood: \(error)")
        }
    }
}
