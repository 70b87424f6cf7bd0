import AsyncHTTPClient
import Foundation
import NIOCore

/// A small W3C WebDriver client for headless Chromium through chromedriver (Debian `chromium` and
/// `chromium-driver`, installed by scripts/setup). Missing binaries fail the test; they never skip it.
final class Browser: @unchecked Sendable {
    // Safe: every stored property is set once in `start` and only read afterwards.
    static let driverPath = "/usr/bin/chromedriver"
    static let chromiumPath = "/usr/bin/chromium"
    static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

    private let driver: RunningCommand
    private let base: String
    private let session: String

    private init(driver: RunningCommand, base: String, session: String) {
        self.driver = driver
        self.base = base
        self.session = session
    }

    /// A browser whose clock is in `timeZone` (an IANA name; Chromium takes it from `TZ`).
    static func start(timeZone: String = "UTC") async throws -> Browser {
        for path in [driverPath, chromiumPath] where !FileManager.default.isExecutableFile(atPath: path) {
            throw HarnessError(
                "\(path) is missing: the console test needs Debian's chromium and chromium-driver (scripts/setup installs them)")
        }
        let port = try freePort()
        let driver = try await Command.start(driverPath, ["--port=\(port)"], environment: ["TZ": timeZone])
        let base = "http://127.0.0.1:\(port)"
        var ready = false
        var problem = "no answer"
        for _ in 0..<100 {
            // Any answer to /status means the driver listens; a new session is what proves Chromium starts.
            do {
                if try await call(base, "GET", "/status") is [String: Any] {
                    ready = true
                    break
                }
            } catch {
                problem = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard ready else {
            driver.signal(SIGTERM)
            throw HarnessError("chromedriver did not become ready (\(problem)): \(driver.stdout) \(driver.stderr)")
        }
        let capabilities: [String: Any] = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    "goog:chromeOptions": [
                        "binary": chromiumPath,
                        "args": [
                            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                            "--window-size=1280,1000",
                        ],
                    ],
                ]
            ]
        ]
        let created = try await call(base, "POST", "/session", capabilities)
        guard let session = (created as? [String: Any])?["sessionId"] as? String else {
            driver.signal(SIGTERM)
            throw HarnessError("chromedriver did not open a session: \(String(describing: created))")
        }
        return Browser(driver: driver, base: base, session: session)
    }

    func quit() async {
        _ = try? await Self.call(base, "DELETE", "/session/\(session)")
        driver.signal(SIGTERM)
        _ = try? await driver.wait(timeout: 10)
    }

    // MARK: Commands

    func open(_ url: String) async throws { _ = try await command("POST", "/url", ["url": url]) }

    var url: String {
        get async throws { try await command("GET", "/url") as? String ?? "" }
    }

    var source: String {
        get async throws { try await command("GET", "/source") as? String ?? "" }
    }

    /// Polls `probe` until it gives a value; fails with `failure` (given the current URL) after `timeout` seconds.
    private func poll<T>(
        timeout: Double, failure: (String) -> String, _ probe: () async throws -> T?
    ) async throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let value = try await probe() { return value }
            guard Date() < deadline else { throw HarnessError(failure(try await url)) }
            try await Task.sleep(for: .milliseconds(150))
        }
    }

    /// The first element matching `css`, waiting up to `timeout` seconds for it to appear.
    func element(_ css: String, timeout: Double = 10) async throws -> String {
        try await poll(timeout: timeout, failure: { "no element matches \(css) on \($0)" }) {
            let found = try? await command("POST", "/element", ["using": "css selector", "value": css])
            return (found as? [String: Any])?[Self.elementKey] as? String
        }
    }

    /// Waits until the page's text contains `text` (live regions update without a reload).
    func waitForText(_ text: String, timeout: Double = 15) async throws {
        try await poll(timeout: timeout, failure: { "'\(text)' did not appear on \($0)" }) {
            try await source.contains(text) ? () : nil
        }
    }

    /// Waits until the browser has navigated to a URL containing `text`.
    func waitForURL(containing text: String, timeout: Double = 15) async throws {
        try await poll(timeout: timeout, failure: { "the browser did not reach a URL with '\(text)': \($0)" }) {
            try await url.contains(text) ? () : nil
        }
    }

    func type(_ css: String, _ text: String) async throws {
        let id = try await element(css)
        _ = try await command("POST", "/element/\(id)/clear", [:] as [String: String])
        _ = try await command("POST", "/element/\(id)/value", ["text": text])
    }

    /// Clicks the element; finds it again if the page replaced it in between (a live region changed).
    func click(_ css: String) async throws {
        for attempt in 1...3 {
            let id = try await element(css)
            do {
                _ = try await command("POST", "/element/\(id)/click", [:] as [String: String])
                return
            } catch let error as HarnessError where error.description.contains("stale element") && attempt < 3 {
                continue
            }
        }
    }

    func text(_ css: String) async throws -> String {
        let id = try await element(css)
        return try await command("GET", "/element/\(id)/text") as? String ?? ""
    }

    /// Resizes the browser window (CSS pixels).
    func resize(width: Int, height: Int) async throws {
        _ = try await command("POST", "/window/rect", ["width": width, "height": height])
    }

    /// Runs a script in the page and returns its result (WebDriver's execute/sync).
    func evaluate(_ script: String) async throws -> Any? {
        try await command("POST", "/execute/sync", ["script": script, "args": [Any]()] as [String: Any])
    }

    /// Saves a PNG of the viewport.
    func screenshot(to path: String) async throws {
        guard let encoded = try await command("GET", "/screenshot") as? String, let data = Data(base64Encoded: encoded) else {
            throw HarnessError("chromedriver returned no screenshot")
        }
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }

    private func command(_ method: String, _ path: String, _ body: Any? = nil) async throws -> Any? {
        try await Self.call(base, method, "/session/\(session)\(path)", body)
    }

    /// One WebDriver call: JSON in, the `value` member out; WebDriver errors become HarnessErrors.
    private static func call(_ base: String, _ method: String, _ path: String, _ body: Any? = nil) async throws -> Any? {
        var request = HTTPClientRequest(url: base + path)
        request.method = .init(rawValue: method)
        if let body {
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let value = object?["value"]
        if response.status.code >= 400 {
            let error = (value as? [String: Any])?["message"] as? String ?? String(decoding: data, as: UTF8.self)
            throw HarnessError("WebDriver \(method) \(path): \(error.prefix(300))")
        }
        return value
    }
}
