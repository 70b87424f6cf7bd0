import Foundation
import GatehouseCore
import Hummingbird

/// How the console shows times: in the reader's zone and already counted down, so that no page shows a
/// raw timestamp before its script has run.
///
/// The zone is the browser's own (`Intl`), which the page's script keeps in the `gatehouse_zone`
/// cookie; until the browser has said it, or when it names no zone this server knows, times are UTC and
/// say so.
struct ConsoleClock: Sendable {
    static let cookie = "gatehouse_zone"

    var zone: TimeZone
    var now: Date

    init(zone: TimeZone, now: Date) {
        self.zone = zone
        self.now = now
    }

    init(request: Request, now: Date) {
        self.init(zone: Self.zone(named: request.cookies[Self.cookie]?.value) ?? Self.utc, now: now)
    }

    static let utc = TimeZone(identifier: "UTC")!

    /// A zone from its IANA name (`Europe/Paris`), or nil for anything else.
    static func zone(named name: String?) -> TimeZone? {
        guard let name = name?.removingPercentEncoding, !name.isEmpty, name.count <= 64,
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/_+-".contains($0)) })
        else { return nil }
        return TimeZone(identifier: name)
    }

    /// What a column of times says it is in.
    var label: String { ["UTC", "GMT", "Etc/UTC"].contains(zone.identifier) ? "UTC" : zone.identifier }

    /// `2026-12-06 22:26:29` in the reader's zone.
    func shown(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { value.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return "\(c.year ?? 0)-\(two(c.month))-\(two(c.day)) \(two(c.hour)):\(two(c.minute)):\(two(c.second))"
    }

    /// A time on one line; the exact UTC instant in its `datetime` and title.
    func time(_ date: Date) -> HTML {
        let exact = Timestamp.format(date)
        return "<time datetime=\"\(exact)\" title=\"\(exact)\">\(shown(date))</time>"
    }

    /// A time written as RFC 3339 (an audit event's), shown the same way; as it is when it does not parse.
    func time(_ text: String) -> HTML {
        guard let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) else {
            return "<time>\(text)</time>"
        }
        return "<time datetime=\"\(text)\" title=\"\(text)\">\(shown(date))</time>"
    }

    /// The time left until `date`, as the page's script counts it down from there.
    func countdown(_ date: Date) -> HTML {
        "<span class=\"countdown\" data-expires=\"\(Timestamp.format(date))\">\(Self.left(Int((date.timeIntervalSince(now)).rounded())))</span>"
    }

    /// `4m 05s`, `2h 10m`, `ended`: the script's own wording (ConsoleAssets.script).
    static func left(_ seconds: Int) -> String {
        let left = max(0, seconds)
        let (minutes, rest) = (left / 60, left % 60)
        if left == 0 { return "ended" }
        if minutes >= 60 { return "\(minutes / 60)h \(minutes % 60)m" }
        return "\(minutes)m \(rest < 10 ? "0" : "")\(rest)s"
    }
}
