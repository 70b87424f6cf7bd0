import Foundation
import GatehouseMCP
import HTTPTypes
import Hummingbird
import MCP
import NIOCore

/// `/mcp`: the MCP endpoint over streamable HTTP. The request is handed to the gateway's MCP server as
/// the SDK's framework-neutral request; an SSE answer is streamed back as it comes.
struct MCPRoutes {
    let gateway: MCPGateway

    /// The largest JSON-RPC message accepted from an agent.
    static let maxBody = 4 << 20

    func add(to router: Router<GatehouseRequestContext>) {
        for method in [HTTPTypes.HTTPRequest.Method.post, .get, .delete] {
            router.on("mcp", method: method) { request, context in
                try await handle(request, source: context.remoteAddress?.ipAddress)
            }
        }
    }

    private func handle(_ request: Request, source: String?) async throws -> Response {
        var request = request
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        var body: Data?
        if request.method == .post {
            let buffer = try await request.collectBody(upTo: Self.maxBody)
            body = Data(buffer.readableBytesView)
        }
        let answer = await gateway.handle(
            MCP.HTTPRequest(method: request.method.rawValue, headers: headers, body: body, path: request.uri.path),
            source: source)
        var fields = HTTPFields()
        for (name, value) in answer.headers {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        let status = HTTPTypes.HTTPResponse.Status(code: answer.statusCode)
        switch answer {
        case .stream(let stream, _):
            fields[.cacheControl] = "no-cache"
            return Response(
                status: status, headers: fields,
                body: ResponseBody { writer in
                    do {
                        for try await chunk in stream { try await writer.write(ByteBuffer(bytes: chunk)) }
                    } catch {
                        // The client went away or the session ended: the stream simply stops.
                    }
                    try await writer.finish(nil)
                })
        default:
            let data = answer.bodyData ?? Data()
            return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}
