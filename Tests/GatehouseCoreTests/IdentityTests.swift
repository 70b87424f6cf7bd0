import Foundation
import Testing

@testable import GatehouseCore

@Suite("Name")
struct NameTests {
    @Test(arguments: ["a", "alice", "Alice", "a1", "a_b", "a-b", "a.b", "dba.team-2_x", String(repeating: "x", count: 63)])
    func validNames(name: String) {
        #expect(Name.isValid(name))
    }

    @Test(arguments: [
        "", "1alice", "_alice", "-alice", ".alice", "al ice", "alice ", " alice", "al/ice", "al:ice", "al$ice",
        "al'ice", "élodie", "aé", "a\u{0}", "a\n", String(repeating: "x", count: 64),
    ])
    func invalidNames(name: String) {
        #expect(!Name.isValid(name))
    }
}

@Suite("Timestamp")
struct TimestampTests {
    /// From 1970 to 2200. Beyond, Foundation's own double arithmetic drifts by a millisecond now and then.
    @Test func arithmeticFormatMatchesFoundation() {
        var generator = SystemRandomNumberGenerator()
        var instants: [Double] = [0, 951_782_400, 4_107_542_400, 7_258_118_399.999, 1_700_000_000.0005]
        for _ in 0..<20_000 { instants.append(Double.random(in: 0..<7_258_118_400, using: &generator)) }
        for _ in 0..<2_000 { instants.append((Double.random(in: 1.7e12..<1.9e12, using: &generator)).rounded() / 1000) }
        for seconds in instants {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(Timestamp.format(date) == Timestamp.foundationFormat(date), "\(seconds)")
        }
    }

    @Test func formatsUTCWithMilliseconds() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_700_000_000.25)) == "2023-11-14T22:13:20.250Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_798_740_000)) == "2026-12-31T18:00:00.000Z")
    }

    @Test(arguments: [0.0, 1_700_000_000.25, 1_700_000_000.5, 1_798_761_599.75, 951_782_400])
    func formatParseRoundTrip(seconds: Double) throws {
        let date = Date(timeIntervalSince1970: seconds)
        let parsed = try #require(Timestamp.parse(Timestamp.format(date)))
        #expect(parsed == date)
    }

    @Test func roundTripKeepsMillisecondPrecision() throws {
        let date = Date(timeIntervalSince1970: 1_712_345_678.901)
        let parsed = try #require(Timestamp.parse(Timestamp.format(date)))
        #expect(abs(parsed.timeIntervalSince(date)) < 0.001)
    }

    @Test func parsesTheFormsTheConfigurationDocuments() throws {
        // "expires must be a date or time such as 2026-12-31 or 2026-12-31T18:00:00Z"
        #expect(Timestamp.parse("2026-12-31T18:00:00Z") == Date(timeIntervalSince1970: 1_798_740_000))
        #expect(Timestamp.parse("2026-12-31T18:00:00.000Z") == Date(timeIntervalSince1970: 1_798_740_000))
        #expect(Timestamp.parse("2026-12-31") == Date(timeIntervalSince1970: 1_798_675_200))
    }

    @Test func readsTheTimeZone() {
        // 18:00 at UTC+2 is 16:00 UTC; reading it as 18:00 UTC would extend an expiry by two hours.
        #expect(Timestamp.parse("2026-12-31T18:00:00+02:00") == Date(timeIntervalSince1970: 1_798_740_000 - 7200))
        #expect(Timestamp.parse("2026-12-31T18:00:00+0200") == Date(timeIntervalSince1970: 1_798_740_000 - 7200))
        #expect(Timestamp.parse("2026-12-31T18:00:00.250-01:00") == Date(timeIntervalSince1970: 1_798_740_000 + 3600.25))
        // Without a zone a time is UTC.
        #expect(Timestamp.parse("2026-12-31T18:00:00") == Date(timeIntervalSince1970: 1_798_740_000))
        #expect(Timestamp.parse("2026-12-31T18:00:00.5") == Date(timeIntervalSince1970: 1_798_740_000.5))
    }

    @Test func leapDays() {
        #expect(Timestamp.parse("2024-02-29") == Date(timeIntervalSince1970: 1_709_164_800))
        #expect(Timestamp.parse("2025-02-29") == nil)
    }

    @Test(arguments: [
        "", "yesterday", "2026-13-01", "2026-00-10", "2026-12-32", "2026-02-30", "2026-04-31", "31/12/2026", "12:00",
        "2026-12-31T25:00:00Z", "2026-12-31T24:00:00Z", "2026-12-31T23:60:00Z", "2026-12-31T23:59:60Z",
        // A date followed by something the parser would silently drop.
        "2026-12-31T18:00Z", "2026-12-31 18:00:00Z", "2026-12-31x", "2026-12-31T", "2026-12-31T18:00:00Zjunk",
        " 2026-12-31", "26-12-31", "٢٠٢٦-12-31",
    ])
    func rejectsNonDates(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }
}

@Suite("DurationText")
struct DurationTextTests {
    @Test(arguments: [
        ("15m", 900.0), ("1h30m", 5400), ("90s", 90), ("12h", 43200), ("7d", 604_800), ("1d2h3m4s", 93784),
        (" 15m ", 900), ("30m30m", 3600), ("0h5m", 300), ("500ms", 0.5), ("10ms", 0.01), ("1s500ms", 1.5),
        ("1m2ms", 60.002),
    ])
    func parsesWhatPeopleWrite(text: String, seconds: Double) {
        #expect(DurationText.parse(text) == seconds)
    }

    @Test(arguments: [
        "", "5", "-1m", "1x", "m", "h1", "0s", "0m0s", "1.5h", "1h 30m", "1H", "15 m", "1m5", "abc", "+1m", "ms", "5mss", "0ms",
        "5sm", "١٢s",
    ])
    func rejectsBadInput(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test(arguments: [
        (900.0, "15m"), (5400, "1h30m"), (90, "1m30s"), (45, "45s"), (0, "0s"), (86400, "1d"), (93784, "1d2h3m4s"),
        (7200, "2h"), (3601, "1h1s"), (59.6, "1m"), (0.5, "500ms"), (0.01, "10ms"), (0.9996, "1s"), (0.0001, "1ms"),
    ])
    func formats(seconds: Double, text: String) {
        #expect(DurationText.format(seconds) == text)
    }

    @Test(arguments: [0.5, 0.01, 1.0, 59, 60, 61, 900, 3599, 3600, 5400, 86399, 86400, 90061, 1_209_600])
    func formatThenParseGivesTheSameInterval(seconds: Double) {
        #expect(DurationText.parse(DurationText.format(seconds)) == seconds)
    }
}

@Suite("User")
struct UserTests {
    let now = Date(timeIntervalSince1970: 1_750_000_000)

    @Test func activeUserHasNoRefusal() {
        #expect(User(name: "alice", groups: []).refusal(at: now) == nil)
        #expect(User(name: "alice", groups: [], expiresAt: now.addingTimeInterval(1)).refusal(at: now) == nil)
    }

    @Test func disabledUserIsRefused() {
        let user = User(name: "bob", groups: ["dba"], disabled: true)
        #expect(user.refusal(at: now) == "user bob is disabled")
        // Disabled wins over a future expiry.
        let later = User(name: "bob", groups: [], expiresAt: now.addingTimeInterval(3600), disabled: true)
        #expect(later.refusal(at: now) == "user bob is disabled")
    }

    @Test func expiredUserIsRefusedWithTheExpiryTime() {
        let expiry = now.addingTimeInterval(-60)
        let user = User(name: "vendor", groups: [], expiresAt: expiry)
        #expect(user.refusal(at: now) == "user vendor expired at \(Timestamp.format(expiry))")
    }

    @Test func userExpiresAtTheExactInstant() {
        let user = User(name: "vendor", groups: [], expiresAt: now)
        #expect(user.refusal(at: now) != nil)
        #expect(user.refusal(at: now.addingTimeInterval(-0.001)) == nil)
    }

    @Test func adminsAreMembersOfTheAdminsGroup() {
        #expect(User(name: "root", groups: ["dba", Group.admins]).isAdmin)
        #expect(!User(name: "alice", groups: ["dba"]).isAdmin)
        #expect(!User(name: "alice", groups: ["Admins", "admin"]).isAdmin)
        #expect(Group.admins == "admins")
    }
}
